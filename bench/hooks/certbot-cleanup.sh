#!/bin/sh
# certbot --manual-cleanup-hook: stop serving the TXT value.
exec curl -sSf -o /dev/null -X POST "$CHALLTESTSRV_URL/clear-txt" \
  -d "{\"host\":\"_acme-challenge.${CERTBOT_DOMAIN}.\"}"
