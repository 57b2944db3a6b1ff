#!/bin/sh
# lego --dns exec (EXEC_PATH): "present|cleanup <fqdn.> <value>" -> pebble-challtestsrv ($CHALLTESTSRV_URL).
case "$1" in
  present) exec curl -sSf -o /dev/null -X POST "$CHALLTESTSRV_URL/set-txt" -d "{\"host\":\"$2\",\"value\":\"$3\"}" ;;
  cleanup) exec curl -sSf -o /dev/null -X POST "$CHALLTESTSRV_URL/clear-txt" -d "{\"host\":\"$2\"}" ;;
  *) echo "lego-exec.sh: unknown command $1" >&2; exit 2 ;;
esac
