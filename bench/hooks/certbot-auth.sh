#!/bin/sh
# certbot --manual-auth-hook: serve the DNS-01 TXT value from pebble-challtestsrv ($CHALLTESTSRV_URL).
# No sleep: certbot's manual plugin leaves propagation to the hook, and challtestsrv serves at once.
exec curl -sSf -o /dev/null -X POST "$CHALLTESTSRV_URL/set-txt" \
  -d "{\"host\":\"_acme-challenge.${CERTBOT_DOMAIN}.\",\"value\":\"${CERTBOT_VALIDATION}\"}"
