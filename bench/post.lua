-- wrk script: POST a small JSON body, with the key from the environment when set.
wrk.method = "POST"
wrk.body = '{"hello":"world","n":[1,2,3]}'
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("BENCH_KEY")
if key and key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end
