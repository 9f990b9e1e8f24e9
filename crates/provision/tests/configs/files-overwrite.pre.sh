set -e
R=$1
echo old > $R/etc/replaced
printf kept > $R/etc/kept; chmod 640 $R/etc/kept
mkdir -p $R/etc/dir-to-file/sub
