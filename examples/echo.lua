-- A TCP echo server and a client in one script, on loopback: the server
-- runs one task per connection; the client sends a few lines, reads each
-- echo back, and the script ends when it is done.
local weft = require "weft"

local server = assert(weft.tcp.listen("127.0.0.1", 0)) -- a free port
print("listening on port " .. server:port())

local serving = weft.go(function()
  local g = weft.group()
  for _ = 1, 2 do -- this demo takes two clients, then stops listening
    local conn = assert(server:accept())
    g:go(function()
      for line in conn:lines() do assert(conn:write(line .. "\n")) end
      conn:close() -- the client shut down its side: we are done
    end)
  end
  server:close()
  return g:wait()
end)

for client = 1, 2 do
  local conn = assert(weft.tcp.connect("localhost", server:port()))
  for i = 1, 3 do
    assert(conn:write(("client %d line %d\n"):format(client, i)))
    print("echo: " .. assert(conn:read_line()))
  end
  conn:shutdown()
  assert(select(2, conn:read()).kind == "EOF")
  conn:close()
end
serving:join()
