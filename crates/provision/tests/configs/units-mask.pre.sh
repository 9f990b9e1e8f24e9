set -e
ln -s /dev/null $1/etc/systemd/system/unmasked.service
mkdir -p $1/lib/systemd/system && echo "[Service]" > $1/lib/systemd/system/untouched.service
