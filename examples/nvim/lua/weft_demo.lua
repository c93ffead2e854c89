-- weft_demo: weft driven by Neovim's own event loop (gh-12).
--
-- Neovim runs libuv (vim.uv, vim.loop before 0.10); weft runs a loop of its
-- own. Instead of stepping on a fixed clock, the plugin watches weft's
-- backend descriptor (weft.pollfd()) with a poll handle, for I/O, and arms
-- a timer for weft.timeout(), for timers and ready tasks, and steps weft
-- when either fires. Between steps Neovim is idle: no busy loop.
--
-- Poll and timer callbacks run in Neovim's "fast" context, where most of
-- the editor API is off limits, so tasks never call vim.api directly: they
-- go through M.editor(fn), which runs fn in vim.schedule and hands its
-- result back to the waiting task through a channel.
--
--   require("weft_demo").start()      or :WeftDemo (plugin/weft_demo.lua)
--
-- The demo: a ticker writing to a scratch buffer, and a TCP echo server in
-- weft that a luv client of Neovim's talks to (I/O that only the poll
-- handle notices).

local uv = vim.uv or vim.loop

local M = {}
local weft, poll, timer

-- The weft module: opts.module_dir, $WEFT_MODULE_DIR, the tree's build
-- (../../build/lib from this plugin), then where it was installed.
local function load_weft(dir)
  if weft then return weft end
  local here = debug.getinfo(1, "S").source:sub(2):match("^(.*)/lua/")
  local dirs = { (here or ".") .. "/../../build/lib" }
  dir = dir or os.getenv("WEFT_MODULE_DIR")
  if dir and dir ~= "" then table.insert(dirs, 1, dir) end
  for i = #dirs, 1, -1 do
    package.cpath = dirs[i] .. "/?.so;" .. package.cpath
  end
  weft = require "weft"
  return weft
end

local step

-- Arm the timer for when weft next has something due: 0 when tasks are
-- ready (the next loop turn, so the editor gets its turn in between), nil
-- when only I/O can wake it (the poll handle will).
local function arm()
  local to = weft.timeout()
  timer:stop()
  if to then timer:start(math.ceil(to * 1000), 0, step) end
end

-- One step, from a poll or timer callback (never from inside a task).
function step()
  M.live = weft.step(2)
  M.steps = M.steps + 1
  arm()
end

-- Step soon: after a host callback fed a channel (a task became ready).
local function kick()
  if timer then timer:stop(); timer:start(0, 0, step) end
end

-- M.editor(fn, ...) -> true, fn's first result | nil, err: from a task,
-- run fn(...) where the editor API is allowed (vim.schedule) and wait for
-- it; nil, err when the wait is cancelled (the editor is quitting). An
-- error in fn is raised in the task.
function M.editor(fn, ...)
  local args, n = { ... }, select("#", ...)
  local reply = weft.chan(1)
  vim.schedule(function()
    local ok, v = pcall(fn, unpack(args, 1, n))
    reply:try_send({ ok = ok, v = v })
    kick()
  end)
  local r, err = reply:recv()
  if not r then return nil, err end
  if not r.ok then error(r.v, 0) end
  return true, r.v
end

local function append(buf, line)
  return M.editor(function()
    vim.api.nvim_buf_set_lines(buf, -1, -1, false, { line })
  end)
end

-- The editor's side of the echo: a luv TCP client in Neovim's own loop
-- sends words to weft's server and appends each reply to buf. Only the
-- poll handle tells the plugin that weft has bytes to read.
local function client(port, buf, words)
  local sock, got, pending = uv.new_tcp(), 0, ""
  sock:connect("127.0.0.1", port, function(err)
    assert(not err, err)
    sock:read_start(function(rerr, data)
      assert(not rerr, rerr)
      pending = pending .. (data or "")
      for line in pending:gmatch("([^\n]*)\n") do
        got = got + 1
        vim.schedule(function()
          vim.api.nvim_buf_set_lines(buf, -1, -1, false, { "echo: " .. line })
        end)
      end
      pending = pending:match("[^\n]*$")
      if got == #words or not data then sock:close() end
    end)
    sock:write(table.concat(words, "\n") .. "\n")
  end)
end

-- The demo's tasks: lines in the scratch buffer, the last says "done".
local function demo(buf, ticks)
  local tick, stop = weft.ticker(0.02)
  for i = 1, ticks do
    -- Each wait fails once the editor quits (M.stop): leave quietly.
    if not tick:recv() or
      not append(buf, ("tick %d at %.2f s"):format(i, weft.now() - M.t0)) then
      return stop()
    end
  end
  stop()

  local server = assert(weft.tcp.listen("127.0.0.1", 0))
  M.editor(client, server:port(), buf, { "hello", "from", "neovim" })
  local conn = assert(server:accept())
  server:close()
  for line in conn:lines() do assert(conn:write(line:upper() .. "\n")) end
  conn:close()
  append(buf, ("done: %d steps, %d woken by the poll handle"):format(
    M.steps, M.polls))
end

-- M.start{ticks=, module_dir=, on_done=} -> the scratch buffer: start the
-- driver (once) and the demo. on_done(buf) runs in the editor's context
-- when the demo ends.
function M.start(opts)
  opts = opts or {}
  load_weft(opts.module_dir)
  if not timer then
    M.steps, M.polls, M.live = 0, 0, 0
    timer = uv.new_timer()
    poll = uv.new_poll(weft.pollfd())
    poll:start("r", function(err)
      if err then return end
      M.polls = M.polls + 1
      step()
    end)
    weft.on_error(function(_, text)
      if M.stopping then return end -- cancelled by M.stop, not a failure
      vim.schedule(function() vim.notify(text, vim.log.levels.ERROR) end)
    end)
    vim.api.nvim_create_autocmd("VimLeavePre", { callback = M.stop })
  end
  local buf = vim.api.nvim_create_buf(false, true)
  vim.api.nvim_buf_set_name(buf, "weft-demo-" .. buf)
  M.t0 = weft.now()
  weft.start(function()
    demo(buf, opts.ticks or 5)
    if opts.on_done then M.editor(opts.on_done, buf) end
    M.editor(vim.notify, "weft demo done")
  end)
  kick()
  return buf
end

-- M.stop(): shut weft down (cancel every task) and close the handles.
function M.stop()
  if not timer then return end
  M.stopping = true
  weft.shutdown(1)
  poll:stop(); poll:close()
  timer:stop(); timer:close()
  poll, timer = nil, nil
end

return M
