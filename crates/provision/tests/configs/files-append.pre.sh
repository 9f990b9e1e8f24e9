set -e
printf "first\n" > $1/etc/existing-appended
