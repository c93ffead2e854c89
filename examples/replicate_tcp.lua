-- replicate_tcp.lua: replicated requests (weft.replicate) over real TCP:
-- three local servers answer the same request after different latencies;
-- the client asks all three and takes the first answer, and the replicas
-- that lost are cancelled, which closes their conns, which the servers
-- see as the client hanging up. Then the same with hedging, which asks a
-- further server only when the ones asked so far are slow.
--
--   weft examples/replicate_tcp.lua
--
-- Everything is on 127.0.0.1 and the script ends by itself in about a
-- second (the times printed vary a little from run to run).

local weft = require "weft"

local LATENCY = { 0.30, 0.05, 0.15 } -- seconds, server by server

--[[ The servers ]]

-- One server: one task per request, which "works" for its latency unless
-- the client hangs up first (a read that gets EOF before the deadline).
local function serve(i, srv)
  local g = weft.group()
  while true do
    local conn = srv:accept()
    if not conn then break end -- closed: the script is done
    g:go(function(ctx)
      local req = conn:read_line(ctx)
      if req then
        local t0 = weft.now()
        local _, err = conn:read(weft.with_timeout(ctx, LATENCY[i]))
        if err.kind == "deadline" then -- worked for the whole latency
          conn:write(("server %d: %s done\n"):format(i, req), ctx)
        else
          print(("  server %d: the client hung up after %.2f s (%s)"):format(
            i, weft.now() - t0, err.kind))
        end
      end
      conn:close()
    end)
  end
  local err = g:wait()
  assert(not err, err)
end

local servers, serving = {}, {}
for i = 1, #LATENCY do
  servers[i] = assert(weft.tcp.listen("127.0.0.1", 0))
  serving[i] = weft.go(serve, i, servers[i])
end

--[[ The client ]]

-- ask(ctx, i, req): one replica, a request to server i; cancelling ctx
-- (another replica won) aborts the connect or the read.
local function ask(ctx, i, req)
  local conn, err = weft.tcp.connect("127.0.0.1", servers[i]:port(), ctx)
  if not conn then return nil, err end
  local line
  line, err = conn:write(req .. "\n", ctx)
  if line then line, err = conn:read_line(ctx) end
  conn:close()
  if not line then return nil, err end
  return line -- replicate returns the winner's results, then its number
end

local ctx = weft.with_timeout(weft.context(), 5)

print("== asking all three servers at once")
local t0 = weft.now()
local answer, i = weft.replicate(ctx, #LATENCY, function(c, r)
  return ask(c, r, "request 1")
end)
assert(answer, i)
print(("%q from server %d after %.2f s"):format(answer, i, weft.now() - t0))
assert(i == 2, "the fastest server should win")

print("== hedged: ask the next server only after 0.1 s without an answer")
local started = 0
t0 = weft.now()
answer, i = weft.replicate(ctx, #LATENCY, function(c, r)
  started = started + 1
  return ask(c, r, "request 2")
end, { hedge = 0.1 })
assert(answer, i)
print(("%q from server %d after %.2f s; %d of %d servers asked"):format(
  answer, i, weft.now() - t0, started, #LATENCY))

-- The servers' tasks for the lost replicas end once they saw the hang-up.
for r = 1, #LATENCY do servers[r]:close() end
for r = 1, #LATENCY do serving[r]:join() end
