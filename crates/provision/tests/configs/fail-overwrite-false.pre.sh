echo old > $1/etc/exists
