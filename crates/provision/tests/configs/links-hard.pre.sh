set -e
echo pre > $1/etc/pre-existing
