#!/usr/bin/env bash
# mkcerts.sh DIR SITE... - a test/demo CA and one certificate per site name.
#
# Writes DIR/ca.pem (+ ca.key) and DIR/SITE.pem + DIR/SITE.key for each
# SITE, with the site name as subjectAltName DNS entry and as CN: what
# wanmigd checks against [site] name and [peer NAME]. EC P-256, 825 days.
# Existing files are kept, so several runs add sites to the same CA.
# Production: use your own PKI; the only requirement is the SAN/CN.
set -euo pipefail
dir=${1:?usage: mkcerts.sh DIR SITE...}
shift
mkdir -p "$dir"
cd "$dir"
if [ ! -f ca.pem ]; then
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout ca.key -out ca.pem -days 825 -subj "/CN=wanmig test CA" \
		-addext basicConstraints=critical,CA:true \
		-addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
fi
for site in "$@"; do
	[ -f "$site.pem" ] && continue
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$site.key" -out "$site.csr" -subj "/CN=$site" 2>/dev/null
	printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature\n' \
		"$site" >"$site.ext"
	openssl x509 -req -in "$site.csr" -CA ca.pem -CAkey ca.key \
		-CAcreateserial -out "$site.pem" -days 825 -extfile "$site.ext" 2>/dev/null
	rm -f "$site.csr" "$site.ext"
	chmod 600 "$site.key"
done
chmod 600 ca.key
