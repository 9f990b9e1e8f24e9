set -e
echo f > $1/etc/was-file
ln -s /old/target $1/etc/retarget
