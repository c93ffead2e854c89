-- weft.net: TCP, UDP and DNS for tasks (runtime/stream.c, tcp.c, udp.c,
-- dns.c), exported as weft.tcp, weft.udp and weft.dns. Every call blocks
-- only the calling task, honours its context (or the ctx given last) and
-- fails with nil, err, err.kind being libuv's error name (ECONNREFUSED,
-- EOF, EAI_NONAME, ...) and its message naming the operation and the
-- address. Wrong arguments raise "bad argument" errors blaming the caller.

local S = require "weft.sched"
local io = require "weft.io"
local stream = require "weft.stream"
local streamcore = require "weft.streamcore"
local tcpcore = require "weft.tcpcore"
local udpcore = require "weft.udpcore"
local dnscore = require "weft.dnscore"

local call, ioerror = io.call, io.error
local ctxarg, wake_closed, wrap = stream.ctxarg, stream.wake_closed,
  stream.wrap
local T_CTX = S.T_CTX
local type, format, tostring, error, getmetatable, setmetatable =
  type, string.format, tostring, error, getmetatable, setmetatable

local tcp, udp, dns = {}, {}, {}

--[[ Arguments ]]

-- A zero byte would end the name C hands the resolver: "a\0b" was "a".
local function hostarg(host, argn, fname)
  if type(host) ~= "string" then S.typeerror(argn, fname, "string", host, 3) end
  if host:find("\0", 1, true) then
    S.argerror(argn, fname, "host contains a zero byte", 3)
  end
  return host
end

local function portarg(port, argn, fname)
  if type(port) ~= "number" or port % 1 ~= 0 or port < 0 or port > 65535 then
    S.argerror(argn, fname, format("port from 0 to 65535 expected, got %s",
      type(port) == "number" and tostring(port) or S.tname(port)), 3)
  end
  return port
end

-- The context a call runs under is cancelled (so stop trying addresses).
local function is_canceled(ctx, fname)
  local c = ctx or S.cur(fname)[T_CTX]
  local n = c.node
  return n and n.cerr and true or false
end

--[[ DNS ]]

local function resolve(host, ctx)
  if dnscore.numeric(host) then return { host } end
  local list, err = call(ctx, "weft.dns.resolve", dnscore.resolve,
    dnscore.cancel, host)
  if list and #list == 0 then
    -- Only addresses of other families: as no address at all, so that
    -- connect and listen fail with an error rather than nil, nil.
    return nil, ioerror({ code = "EAI_NODATA", what = "resolve " .. host,
      text = "no IPv4 or IPv6 address" })
  end
  return list, err
end

-- weft.dns.resolve(host [, ctx]) -> list of addresses | nil, err
function dns.resolve(host, ctx)
  hostarg(host, 1, "resolve")
  return resolve(host, ctxarg(ctx, 2, "resolve"))
end

--[[ TCP conns: the shared conn methods (weft.stream), and these ]]

local Conn, ConnMT, check_conn = stream.class("weft.tcp.conn")

local function newconn(h)
  return wrap(h, ConnMT)
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
  -- Linux's bound (TCP_KEEPIDLE); past it libuv failed with EINVAL, and
  -- past 2^32 the C conversion was undefined.
  if secs and secs > 32767 then
    S.argerror(3, "set_keepalive", "at most 32767 seconds expected")
  end
  local ok, err = tcpcore.keepalive(h, on, secs)
  if not ok then return nil, ioerror(err) end
  return true
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
  -- NaN and fractions are refused, and a huge backlog means "as many as
  -- the kernel allows" (it caps the value at somaxconn anyway).
  if backlog ~= nil and (type(backlog) ~= "number" or backlog ~= backlog or
      backlog < 1 or backlog % 1 ~= 0) then
    S.argerror(3, "listen", "backlog: positive integer expected")
  end
  if backlog and backlog > 0x7fffffff then backlog = 0x7fffffff end
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

-- closer(MT, what, close) -> the close method of a server or a sock:
-- idempotent; a task waiting on it gets nil, err (kind "closed"); it keeps
-- its address for __tostring.
local function closer(MT, what, close)
  return function(v)
    S.checkmt(v, MT, 1, "close")
    local h = v.h
    if h == nil then return true end
    v.addr = tostring(h):match(": (%S+)")
    v.h = nil
    wake_closed(what, close(h))
    return true
  end
end

-- describer(name) -> __tostring: the handle's while open, then the address.
local function describer(name)
  return function(v)
    if v.h then return tostring(v.h) end
    return format("%s: %s (closed)", name, v.addr or "?")
  end
end

-- server:close() -> true; a task waiting in accept gets nil, err.
Server.close = closer(ServerMT, "server", tcpcore.server_close)
ServerMT.__tostring = describer("weft.tcp.server")

--[[ UDP ]]

-- The largest datagram sock:send_to takes (udp.c's DGRAM_MAX).
local DGRAM_MAX = 65536

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
  if #data > DGRAM_MAX then
    S.argerror(2, "send_to", format("at most %d bytes in a datagram, got %d",
      DGRAM_MAX, #data))
  end
  hostarg(host, 3, "send_to")
  portarg(port, 4, "send_to")
  ctx = ctxarg(ctx, 5, "send_to")
  local addrs, err = resolve(host, ctx)
  if not addrs then return nil, err end
  local req
  req, err = udpcore.send(h, data, addrs[1], port)
  if req == true then return true end
  if req == nil then return nil, ioerror(err) end
  -- Queued: wait for this datagram's own request.
  return call(ctx, "sock:send_to", udpcore.sent, udpcore.send_cancel, h, req)
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
Sock.close = closer(SockMT, "sock", udpcore.close)
SockMT.__tostring = describer("weft.udp.sock")

return { tcp = tcp, udp = udp, dns = dns }
