-- fetch.lua: a fetcher that rate-limits its outgoing connections with
-- weft.rate, against a local server: twelve fetches start at once, but a
-- token bucket lets a connection open only at 20 a second (after a burst
-- of 3), so the server sees them spread out however many tasks want one.
--
--   weft examples/fetch.lua
--
-- The server speaks a one-line protocol ("GET /path" -> "200 /path N
-- bytes" and a body), on 127.0.0.1; the script ends in about half a
-- second.

local weft = require "weft"

--[[ The server: it logs when each connection came ]]

local server = assert(weft.tcp.listen("127.0.0.1", 0))
local t0 = weft.now()
local arrivals = {}

local serving = weft.go(function()
  local g = weft.group()
  while true do
    local conn = server:accept()
    if not conn then break end
    arrivals[#arrivals + 1] = weft.now() - t0
    g:go(function(ctx)
      local req = conn:read_line(ctx)
      local path = req and req:match("^GET (/%S*)$")
      if path then
        local body = ("<page %s>"):format(path):rep(10)
        conn:write(("200 %s %d\n%s"):format(path, #body, body), ctx)
      else
        conn:write("400 bad request\n", ctx)
      end
      conn:shutdown(ctx)
      conn:close()
    end)
  end
  local err = g:wait()
  assert(not err, err)
end)

--[[ The fetcher ]]

-- 20 connections a second, at most 3 at once after an idle spell.
local limiter = weft.rate.limiter(weft.rate.per(20, 1), 3)

-- fetch(ctx, path) -> body | nil, err: wait for a token, then connect.
local function fetch(ctx, path)
  local ok, err = limiter:wait(1, ctx)
  if not ok then return nil, err end
  local conn
  conn, err = weft.tcp.connect("127.0.0.1", server:port(), ctx)
  if not conn then return nil, err end
  local status, body
  ok, err = conn:write("GET " .. path .. "\n", ctx)
  if ok then status, err = conn:read_line(ctx) end
  local code, size = (status or ""):match("^(%d+) %S+ (%d+)$")
  if code == "200" then body, err = conn:read_exactly(tonumber(size), ctx) end
  conn:close()
  if not body then return nil, err or weft.error("fetch", "%s: %s", path,
    status) end
  return body
end

local ctx = weft.with_timeout(weft.context(), 5)
local g = weft.group { ctx = ctx }
local sizes = {}
for n = 1, 12 do
  g:go(function(c)
    local body, err = fetch(c, "/item/" .. n)
    if not body then return nil, err end
    sizes[n] = #body
  end)
end
local err = g:wait()
assert(not err, err)
local elapsed = weft.now() - t0

local total, times = 0, {}
for n = 1, 12 do total = total + sizes[n] end
for n = 1, #arrivals do times[n] = ("%.2f"):format(arrivals[n]) end
print(("12 pages, %d bytes, in %.2f s"):format(total, elapsed))
print("the server saw connections at (s): " .. table.concat(times, " "))
print("that is 3 at once, then one every 0.05 s")
assert(elapsed >= (12 - 3) / 20 * 0.9, "the limiter let them through")

server:close()
serving:join()
