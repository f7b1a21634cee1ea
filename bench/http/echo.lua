-- wrk script for bench/http: POST a small JSON body to /api/v1/echo.
-- BENCH_AUTH_HEADER (e.g. "Bearer kiln_...") is sent as Authorization when set,
-- to both servers alike so request sizes match.
wrk.method = "POST"
wrk.body = os.getenv("BENCH_ECHO_BODY") or '{"hello":"world","n":[1,2,3]}'
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("BENCH_AUTH_HEADER")
if auth ~= nil and auth ~= "" then
  wrk.headers["Authorization"] = auth
end
