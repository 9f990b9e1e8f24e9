set -e
R=$1
mkdir -p $R/var/home $R/usr/etc/conf
ln -s var/home $R/home
ln -s ../usr/etc/conf $R/etc/conf.link
