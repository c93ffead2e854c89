-- chat.lua: a line-protocol chat server on loopback, with one task per
-- client and a hub task that broadcasts through channels; three scripted
-- clients in the same script join, talk and leave, and the script ends.
--
--   weft examples/chat.lua
--
-- The protocol: the server asks "name?", the first line is the client's
-- name, every later line is said to everyone ("alice: hi"), and "/quit"
-- (or hanging up) leaves. Each client has an outbound channel and a writer
-- task of its own, so a slow client only fills its own queue: the hub
-- never waits on a socket (a client whose queue is full loses the line).

local weft = require "weft"

--[[ The server ]]

local server = assert(weft.tcp.listen("127.0.0.1", 0)) -- a free port
local hub = weft.chan(64) -- events from the client tasks, in order

-- The hub owns the list of members: no lock, one task changes it.
local function run_hub()
  local members = {} -- name -> outbound channel
  for ev in hub:iter() do
    local text
    if ev.join then
      members[ev.name] = ev.out
      text = "* " .. ev.name .. " joined"
    elseif ev.leave then
      members[ev.name] = nil
      ev.out:close() -- its writer sends what is queued, then ends
      text = "* " .. ev.name .. " left"
    else
      text = ev.name .. ": " .. ev.text
    end
    for _, out in pairs(members) do out:try_send(text) end
  end
end

local function serve(conn)
  assert(conn:write("name?\n"))
  local name = conn:read_line()
  if not name then return conn:close() end
  local out = weft.chan(32)
  local writer = weft.go(function()
    for line in out:iter() do
      if not conn:write(line .. "\n") then break end
    end
  end)
  hub:send { join = true, name = name, out = out }
  while true do
    local line = conn:read_line()
    if not line or line == "/quit" then break end
    hub:send { name = name, text = line }
  end
  hub:send { leave = true, name = name, out = out }
  writer:join()
  conn:shutdown() -- the lines queued are written before the end
  conn:close()
end

local serving = weft.go(function()
  local g = weft.group()
  while true do
    local conn = server:accept()
    if not conn then break end -- the server was closed: no more clients
    g:go(function() serve(conn) end)
  end
  local err = g:wait()
  assert(not err, err)
end)
local hubtask = weft.go(run_hub)

--[[ The scripted clients ]]

-- Every read has a deadline, so that a mistake ends the script instead of
-- leaving it waiting.
local ctx = weft.with_timeout(weft.context(), 5)
local clients = {}

local function join(name)
  local conn = assert(weft.tcp.connect("127.0.0.1", server:port(), ctx))
  assert(conn:read_line(ctx) == "name?")
  assert(conn:write(name .. "\n", ctx))
  clients[name] = conn
end

local function say(name, text)
  assert(clients[name]:write(text .. "\n", ctx))
end

-- expect(line, name...): each named client receives line next.
local function expect(line, ...)
  for i = 1, select("#", ...) do
    local name = select(i, ...)
    local got = assert(clients[name]:read_line(ctx))
    assert(got == line, ("%s expected %q, got %q"):format(name, line, got))
    print(("%-6s| %s"):format(name, got))
  end
end

local function leave(name)
  say(name, "/quit")
  local _, err = clients[name]:read_line(ctx) -- the server hangs up
  assert(err.kind == "EOF", tostring(err))
  clients[name]:close()
  clients[name] = nil
end

print("chat server on 127.0.0.1:" .. server:port())
join("alice")
expect("* alice joined", "alice")
join("bob")
expect("* bob joined", "alice", "bob")
join("carol")
expect("* carol joined", "alice", "bob", "carol")
say("alice", "hi all")
expect("alice: hi all", "alice", "bob", "carol")
say("bob", "hi alice")
expect("bob: hi alice", "alice", "bob", "carol")
leave("carol")
expect("* carol left", "alice", "bob")
say("alice", "bye bob")
expect("alice: bye bob", "alice", "bob")
leave("bob")
expect("* bob left", "alice")
leave("alice")

server:close()
serving:join()
hub:close()
hubtask:join()
print("everyone left; the server is closed")
