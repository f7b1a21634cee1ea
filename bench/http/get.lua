-- wrk script for bench/http GET routes: only adds the optional Authorization
-- header (BENCH_AUTH_HEADER), so GET and POST runs send the same headers.
local auth = os.getenv("BENCH_AUTH_HEADER")
if auth ~= nil and auth ~= "" then
  wrk.headers["Authorization"] = auth
end
