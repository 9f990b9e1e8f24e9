set -e
mkdir -p $1/etc/systemd/system/multi-user.target.wants
ln -s /etc/systemd/system/off.service $1/etc/systemd/system/multi-user.target.wants/off.service
