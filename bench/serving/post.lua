-- wrk script for bench/serving: POSTs the JSON body in BENCH_BODY_FILE (read
-- once at start) with BENCH_AUTH_HEADER as Authorization when set; kiln and
-- the peer get byte-identical requests apart from that header.
wrk.method = "POST"
local path = os.getenv("BENCH_BODY_FILE")
if path == nil or path == "" then
  error("BENCH_BODY_FILE is not set")
end
local f = assert(io.open(path, "rb"))
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("BENCH_AUTH_HEADER")
if auth ~= nil and auth ~= "" then
  wrk.headers["Authorization"] = auth
end
