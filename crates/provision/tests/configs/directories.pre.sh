set -e
R=$1
mkdir -p $R/existing; chmod 700 $R/existing; echo x > $R/existing/keep
echo file > $R/replace-me
