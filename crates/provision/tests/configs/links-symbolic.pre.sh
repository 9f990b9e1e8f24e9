set -e
ln -s /etc/target $1/etc/same
