# Sourced by scripts/run and scripts/test (after _venv.sh): the browser assets camvault
# serves itself — hls.js and Swagger UI — installed from web/package-lock.json by `npm ci`
# into web/node_modules when missing or older than the lock file. Node.js/npm come from
# Debian when absent and we are root. --ignore-scripts: no package may run code (or phone
# home) at install time.
web_stamp="$ROOT/web/node_modules/.camvault-installed"
if [ ! -f "$web_stamp" ] || [ "$ROOT/web/package-lock.json" -nt "$web_stamp" ]; then
  if ! command -v npm >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Node.js and npm (Debian) for the web player …" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends nodejs npm >/dev/null; } || echo "(failed)" >&2
  fi
  if command -v npm >/dev/null; then
    echo "installing the web player (npm ci in web/) …" >&2
    (cd "$ROOT/web" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) \
      && touch "$web_stamp"
  else
    echo "npm not found: the web page cannot play footage (install Node.js + npm)" >&2
  fi
fi
