# Shared by request_cpu.sh and request_instructions.sh (sourced, not run): one relay + daemon pair
# relaying HTTP to a `hycod-load serve-http` target on hybrid connection "web".

# wait_for FILE TEXT [SECONDS]: until FILE holds TEXT (SECONDS at most, default 10).
wait_for() {
  local tries=$(( ${3:-10} * 20 ))
  for _ in $(seq "$tries"); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  echo "no '$2' in $1:" >&2; cat "$1" >&2; exit 1
}

# web_daemon_config FILE KEY RELAY_URL TARGET: a one-worker daemon listening on "web" with the
# rule "root" and key KEY, relaying HTTP to TARGET (host:port); mode 600 (the file holds the key).
web_daemon_config() {
  cat >"$1" <<TOML
[runtime]
workers = 1
[[hybrid_connection]]
name = "web"
connection_string = "Endpoint=sb://localhost/;SharedAccessKeyName=root;SharedAccessKey=$2;EntityPath=web"
relay_url = "$3"
http_target = "http://$4/"
TOML
  chmod 600 "$1"
}
