-- weft.net: TCP, UDP and DNS for tasks (runtime/stream.c, tcp.c, udp.c,
-- dns.c), exported as weft.tcp, weft.udp and weft.dns. Every call blocks
-- only the calling task, honours its context (or the ctx given last) and
-- fails with nil, err, err.kind being libuv's error name (ECONNREFUSED,
-- EOF, EAI_NONAME, ...) and its message naming the operation and the
-- address. Wrong arguments raise "bad argument" errors blaming the caller.

local S = require "weft.sched"
local io = require "weft.io"
local errors = require "weft.errors"
local streamcore = require "weft.streamcore"
local tcpcore = require "weft.tcpcore"
local udpcore = require "weft.udpcore"
local dnscore = require "weft.dnscore"

local R = S.R
local call, ioerror = io.call, io.error
local CtxMT, T_CTX = S.CtxMT, S.T_CTX
local type, select, format, tostring, error, getmetatable, setmetatable =
  type, select, string.format, tostring, error, getmetatable, setmetatable

local take, sread, read_cancel = streamcore.take, streamcore.read,
  streamcore.read_cancel
local swrite, drain, drain_cancel = streamcore.write, streamcore.drain,
  streamcore.drain_cancel

local tcp, udp, dns = {}, {}, {}

--[[ Arguments ]]

local function ctxarg(ctx, argn, fname)
  if ctx ~= nil and getmetatable(ctx) ~= CtxMT then
    S.typeerror(argn, fname, "weft.ctx", ctx, 3)
  end
  return ctx
end

local function hostarg(host, argn, fname)
  if type(host) ~= "string" then S.typeerror(argn, fname, "string", host, 3) end
  return host
end

local function portarg(port, argn, fname)
  if type(port) ~= "number" or port % 1 ~= 0 or port < 0 or port > 65535 then
    S.argerror(argn, fname, format("port from 0 to 65535 expected, got %s",
      type(port) == "number" and tostring(port) or S.tname(port)), 3)
  end
  return port
end

-- Wake the tasks whose operations were waiting on a handle just closed.
local function wake_closed(what, ...)
  for i = 1, select("#", ...) do
    R.io_done((select(i, ...)), nil, errors.new("closed",
      what .. ": closed while waiting"))
  end
end

-- The context a call runs under is cancelled (so stop trying addresses).
local function is_canceled(ctx, fname)
  local c = ctx or S.cur(fname)[T_CTX]
  local n = c.node
  return n and n.cerr ~= nil
end

--[[ DNS ]]

local function resolve(host, ctx)
  if dnscore.numeric(host) then return { host } end
  return call(ctx, "weft.dns.resolve", dnscore.resolve, dnscore.cancel, host)
end

-- weft.dns.resolve(host [, ctx]) -> list of addresses | nil, err
function dns.resolve(host, ctx)
  hostarg(host, 1, "resolve")
  return resolve(host, ctxarg(ctx, 2, "resolve"))
end

--[[ TCP conns ]]

local Conn = {}
local ConnMT = { __index = Conn, __name = "weft.tcp.conn" }

local function newconn(h)
  return setmetatable({ h = h }, ConnMT)
end

local function check_conn(c, fname)
  if getmetatable(c) ~= ConnMT then
    S.typeerror(1, fname, "weft.tcp.conn", c, 3)
  end
  local h = c.h
  if h == nil then error("attempt to use a closed conn", 3) end
  return h
end

-- read(h, mode, n, ctx, what): what is buffered, else wait for it.
local function read(h, mode, n, ctx, what)
  local v, err = take(h, mode, n)
  if v == nil and err == nil then
    return call(ctx, what, sread, read_cancel, h, mode, n)
  end
  if v == nil then return nil, ioerror(err) end
  return v
end

-- conn:read([max] [, ctx]) -> data | nil, err: whatever arrived, at most
-- max bytes (64 KiB by default); kind "EOF" at the end.
function Conn.read(c, max, ctx)
  local h = check_conn(c, "read")
  if getmetatable(max) == CtxMT then max, ctx = nil, max end
  if max ~= nil and (type(max) ~= "number" or max ~= max or max < 0) then
    S.typeerror(2, "read", "non-negative number", max)
  end
  ctx = ctxarg(ctx, 3, "read")
  if max == 0 then return "" end
  return read(h, "any", max or 65536, ctx, "conn:read")
end

-- conn:read_line([ctx]) -> line without its "\n" (or "\r\n") | nil, err;
-- a last line without "\n" is a line.
function Conn.read_line(c, ctx)
  local h = check_conn(c, "read_line")
  return read(h, "line", 0, ctxarg(ctx, 2, "read_line"), "conn:read_line")
end

-- conn:read_exactly(n [, ctx]) -> n bytes | nil, err (kind "EOF" when the
-- stream ends first; what came stays buffered).
function Conn.read_exactly(c, n, ctx)
  local h = check_conn(c, "read_exactly")
  if type(n) ~= "number" or n ~= n or n < 0 or n % 1 ~= 0 then
    S.typeerror(2, "read_exactly", "non-negative integer", n)
  end
  ctx = ctxarg(ctx, 3, "read_exactly")
  if n == 0 then return "" end
  return read(h, "exact", n, ctx, "conn:read_exactly")
end

-- conn:lines([ctx]) -> an iterator over the lines, for a `for` loop; it
-- ends at EOF and raises on any other error, as io.lines does.
function Conn.lines(c, ctx)
  check_conn(c, "lines")
  ctxarg(ctx, 2, "lines")
  return function()
    local h = c.h
    if h == nil then return nil end
    local line, err = read(h, "line", 0, ctx, "conn:lines")
    if line then return line end
    if err.kind == "EOF" then return nil end
    error(tostring(err), 2)
  end
end

-- conn:write(data [, ctx]) -> true | nil, err: returns once the data is
-- handed to the kernel or queued with at most 1 MiB ahead of it. A failure
-- of queued bytes shows on a later write or shutdown. Cancelled, it returns
-- at once; the queued bytes may still go out.
function Conn.write(c, data, ctx)
  local h = check_conn(c, "write")
  if type(data) ~= "string" then S.typeerror(2, "write", "string", data) end
  ctx = ctxarg(ctx, 3, "write")
  local ok, err = swrite(h, data)
  if ok then return true end
  if ok == nil then return nil, ioerror(err) end
  return call(ctx, "conn:write", drain, drain_cancel, h)
end

-- conn:shutdown([ctx]) -> true | nil, err: no more writes; the peer reads
-- EOF once the queued bytes are written.
function Conn.shutdown(c, ctx)
  local h = check_conn(c, "shutdown")
  return call(ctxarg(ctx, 2, "shutdown"), "conn:shutdown",
    streamcore.shutdown, streamcore.shutdown_cancel, h)
end

-- conn:close() -> true; closing twice does nothing. Tasks waiting on the
-- conn get nil, err (kind "closed").
function Conn.close(c)
  S.checkmt(c, ConnMT, 1, "close")
  local h = c.h
  if h == nil then return true end
  c.addr = tostring(h):match(": (%S+)")
  c.h = nil
  wake_closed("conn", streamcore.close(h))
  return true
end

local function addr_result(host, port)
  if host == nil then return nil, ioerror(port) end
  return host, port
end

-- conn:peer() -> host, port of the other end | nil, err
function Conn.peer(c)
  return addr_result(tcpcore.peer(check_conn(c, "peer")))
end

-- conn:sock() -> host, port of this end | nil, err
function Conn.sock(c)
  return addr_result(tcpcore.sock(check_conn(c, "sock")))
end

-- conn:set_nodelay(on) -> true | nil, err
function Conn.set_nodelay(c, on)
  local ok, err = tcpcore.nodelay(check_conn(c, "set_nodelay"), on)
  if not ok then return nil, ioerror(err) end
  return true
end

-- conn:set_keepalive(on [, seconds]) -> true | nil, err
function Conn.set_keepalive(c, on, secs)
  local h = check_conn(c, "set_keepalive")
  if secs ~= nil and (type(secs) ~= "number" or secs < 1 or secs % 1 ~= 0)
  then
    S.typeerror(3, "set_keepalive", "positive integer", secs)
  end
  local ok, err = tcpcore.keepalive(h, on, secs)
  if not ok then return nil, ioerror(err) end
  return true
end

-- conn:buffered() -> bytes read ahead, bytes queued to write
function Conn.buffered(c)
  return streamcore.buffered(check_conn(c, "buffered"))
end

function ConnMT.__tostring(c)
  if c.h then return tostring(c.h) end
  return format("weft.tcp.conn: %s (closed)", c.addr or "?")
end

-- weft.tcp.connect(host, port [, ctx]) -> conn | nil, err: tries each of
-- host's addresses in turn and fails with the last address's error.
function tcp.connect(host, port, ctx)
  hostarg(host, 1, "connect")
  portarg(port, 2, "connect")
  ctx = ctxarg(ctx, 3, "connect")
  local addrs, err = resolve(host, ctx)
  if not addrs then return nil, err end
  for i = 1, #addrs do
    local h = tcpcore.new()
    local ok
    ok, err = call(ctx, "weft.tcp.connect", tcpcore.connect,
      tcpcore.connect_cancel, h, addrs[i], port)
    if ok then return newconn(h) end
    streamcore.close(h)
    if is_canceled(ctx, "weft.tcp.connect") then break end
  end
  return nil, err
end

--[[ TCP servers ]]

local Server = {}
local ServerMT = { __index = Server, __name = "weft.tcp.server" }

local function check_server(v, fname)
  if getmetatable(v) ~= ServerMT then
    S.typeerror(1, fname, "weft.tcp.server", v, 3)
  end
  local h = v.h
  if h == nil then error("attempt to use a closed server", 3) end
  return h
end

-- weft.tcp.listen(host, port [, {backlog=}]) -> server | nil, err; port 0
-- picks a free port (server:port() tells which).
function tcp.listen(host, port, opts)
  hostarg(host, 1, "listen")
  portarg(port, 2, "listen")
  if opts ~= nil and type(opts) ~= "table" then
    S.typeerror(3, "listen", "table", opts)
  end
  local backlog = opts and opts.backlog
  if backlog ~= nil and (type(backlog) ~= "number" or backlog < 1) then
    S.argerror(3, "listen", "backlog: positive number expected")
  end
  local addrs, err = resolve(host)
  if not addrs then return nil, err end
  local h
  h, err = tcpcore.listen(addrs[1], port, backlog)
  if not h then return nil, ioerror(err) end
  return setmetatable({ h = h }, ServerMT)
end

-- server:accept([ctx]) -> conn | nil, err
function Server.accept(v, ctx)
  local h = check_server(v, "accept")
  ctx = ctxarg(ctx, 2, "accept")
  local c, err = tcpcore.accept_now(h)
  if c == nil and err == nil then
    c, err = call(ctx, "server:accept", tcpcore.accept, tcpcore.accept_cancel,
      h)
  end
  if not c then return nil, ioerror(err) end
  return newconn(c)
end

-- server:port() -> the port it listens on
function Server.port(v)
  local _, port = tcpcore.server_addr(check_server(v, "port"))
  return port
end

-- server:sock() -> host, port it listens on
function Server.sock(v)
  return addr_result(tcpcore.server_addr(check_server(v, "sock")))
end

-- server:close() -> true; a task waiting in accept gets nil, err.
function Server.close(v)
  S.checkmt(v, ServerMT, 1, "close")
  local h = v.h
  if h == nil then return true end
  v.addr = tostring(h):match(": (%S+)")
  v.h = nil
  wake_closed("server", tcpcore.server_close(h))
  return true
end

function ServerMT.__tostring(v)
  if v.h then return tostring(v.h) end
  return format("weft.tcp.server: %s (closed)", v.addr or "?")
end

--[[ UDP ]]

local Sock = {}
local SockMT = { __index = Sock, __name = "weft.udp.sock" }

local function check_sock(u, fname)
  if getmetatable(u) ~= SockMT then
    S.typeerror(1, fname, "weft.udp.sock", u, 3)
  end
  local h = u.h
  if h == nil then error("attempt to use a closed sock", 3) end
  return h
end

-- weft.udp.bind(host, port) -> sock | nil, err; port 0 picks a free one.
function udp.bind(host, port)
  hostarg(host, 1, "bind")
  portarg(port, 2, "bind")
  local addrs, err = resolve(host)
  if not addrs then return nil, err end
  local h
  h, err = udpcore.bind(addrs[1], port)
  if not h then return nil, ioerror(err) end
  return setmetatable({ h = h }, SockMT)
end

-- sock:send_to(data, host, port [, ctx]) -> true | nil, err
function Sock.send_to(u, data, host, port, ctx)
  local h = check_sock(u, "send_to")
  if type(data) ~= "string" then S.typeerror(2, "send_to", "string", data) end
  hostarg(host, 3, "send_to")
  portarg(port, 4, "send_to")
  ctx = ctxarg(ctx, 5, "send_to")
  local addrs, err = resolve(host, ctx)
  if not addrs then return nil, err end
  local ok
  ok, err = udpcore.send(h, data, addrs[1], port)
  if ok then return true end
  if ok == nil then return nil, ioerror(err) end
  return call(ctx, "sock:send_to", udpcore.sent, udpcore.send_cancel, h)
end

-- sock:recv_from([ctx]) -> data, host, port | nil, err
function Sock.recv_from(u, ctx)
  local h = check_sock(u, "recv_from")
  local data, from = call(ctxarg(ctx, 2, "recv_from"), "sock:recv_from",
    udpcore.recv, udpcore.recv_cancel, h)
  if not data then return nil, from end
  return data, from[1], from[2]
end

-- sock:port() -> the port it is bound to
function Sock.port(u)
  local _, port = udpcore.addr(check_sock(u, "port"))
  return port
end

-- sock:sock() -> host, port it is bound to
function Sock.sock(u)
  return addr_result(udpcore.addr(check_sock(u, "sock")))
end

-- sock:close() -> true; idempotent.
function Sock.close(u)
  S.checkmt(u, SockMT, 1, "close")
  local h = u.h
  if h == nil then return true end
  u.addr = tostring(h):match(": (%S+)")
  u.h = nil
  wake_closed("sock", udpcore.close(h))
  return true
end

function SockMT.__tostring(u)
  if u.h then return tostring(u.h) end
  return format("weft.udp.sock: %s (closed)", u.addr or "?")
end

return { tcp = tcp, udp = udp, dns = dns }
