-- bench/net_ab.lua WORKLOAD: network figures bench/weft_bench.lua does not
-- have, printed as "name value" for bench/net_ab.sh.
--   bulk_into: weft_bench.lua's bulk (1 GiB over one loopback conn, MB/s),
--   the receiver reading with conn:read_into into one reused
--   string.buffer, as Go's reader reuses one []byte.
local buffer = require "string.buffer"
local workload, mib = ...

local benches = {}

function benches.bulk_into()
  local writes = (tonumber(mib) or 1024) * 16
  local bytes = {}
  for i = 1, 65537 do bytes[i] = string.char(math.random(0, 255)) end
  local chunk = table.concat(bytes)
  local total = writes * #chunk
  local server = assert(weft.tcp.listen("127.0.0.1", 0))
  local t0 = weft.now()
  local sender = weft.go(function()
    local conn = assert(weft.tcp.connect("127.0.0.1", server:port()))
    for _ = 1, writes do assert(conn:write(chunk)) end
    assert(conn:shutdown())
    conn:close()
  end)
  local conn = assert(server:accept())
  local buf = buffer.new(65536)
  local got = 0
  while true do
    local k, err = conn:read_into(buf)
    if not k then
      assert(err.kind == "EOF", tostring(err))
      break
    end
    got = got + k
    buf:reset()
  end
  local dt = weft.now() - t0
  sender:join()
  conn:close()
  server:close()
  assert(got == total)
  return total / dt / 1e6, total
end

print(workload, benches[workload]())
