-- wrk -s: POST one complaint per request, each with its own external_ref
local counter = 0
local thread_id = 0
function setup(thread) thread:set("tid", thread_id); thread_id = thread_id + 1 end
function init(args) token = os.getenv("KESU_BENCH_TOKEN"); run = os.getenv("KESU_BENCH_RUN") or "r" end
request = function()
  counter = counter + 1
  local body = string.format('{"channel":"web","title":"路灯不亮","body":"小区门口路灯坏了一周，请尽快处理",' ..
    '"external_ref":"bench-%s-%d-%d","location":{"district_code":"110105"},' ..
    '"complainant":{"name":"张三","phone":"13812345678"}}', run, tid, counter)
  return wrk.format("POST", "/v1/complaints", {["Content-Type"]="application/json",
    ["Authorization"]="Bearer " .. token}, body)
end
