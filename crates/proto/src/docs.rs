//! Where users read Keel's documentation. Errors and help texts on a node point to the
//! published site (or to `man keel-<command>`), never to a path in Keel's source repository.

/// The address of a page of the documentation site, as a `&'static str` usable in clap
/// attributes: `docs_url!("updates/agent.html")` is `https://keel.dev/docs/updates/agent.html`, and
/// `docs_url!("")` the site's base.
#[macro_export]
macro_rules! docs_url {
    ($page:literal) => {
        concat!("https://keel.dev/docs/", $page)
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn pages_are_under_the_site_base() {
        assert_eq!(docs_url!(""), "https://keel.dev/docs/");
        assert_eq!(
            docs_url!("updates/agent.html"),
            "https://keel.dev/docs/updates/agent.html"
        );
    }
}
