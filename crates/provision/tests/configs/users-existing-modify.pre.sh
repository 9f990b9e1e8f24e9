set -e
R=$1
mkdir -p $R/usr/games $R/var/spool/news $R/var/mail
chown 9:9 $R/var/spool/news
touch $R/var/mail/news && chown 9:8 $R/var/mail/news
