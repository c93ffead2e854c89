-- errors.lua: error propagation, after "Concurrency in Go", ch. 5.
--
--   weft examples/errors.lua          both versions, reported side by side
--   weft examples/errors.lua raw      version 1's error reaches the top
--   weft examples/errors.lua wrapped  version 2's error reaches the top
--   weft -v examples/errors.lua raw   ... with the full record
--
-- Three layers. The low-level module checks a job's binary and fails the
-- way the system does, with a raw message. The intermediate module runs a
-- job: in version 1 it lets that raw failure escape (assert raises it),
-- which is a bug from the user's point of view; in version 2 it turns it
-- into a well-formed error that says what this module was doing, keeping
-- the raw one as its cause. The top level prints a friendly line with a log
-- id, and logs the full record under the same id.

local weft = require "weft"

-- lowlevel: can the job's binary be opened?
local function is_globally_exec(path)
  local f, msg = io.open(path, "rb")
  if not f then return nil, msg end
  f:close()
  return true
end

local JOB_BINARY = "/bad/job/binary"

-- intermediate, version 1: the low-level error escapes unwrapped.
local function run_job_raw(id)
  assert(is_globally_exec(JOB_BINARY))
  return "ran job " .. id
end

-- intermediate, version 2: a well-formed error that says what this module
-- was doing; the raw message is its cause.
local function run_job(id)
  local ok, err = is_globally_exec(JOB_BINARY)
  if not ok then
    return nil, weft.error { kind = "job", cause = err,
      msg = ("cannot run job %q: requisite binaries not available"):format(id) }
  end
  return "ran job " .. id
end

local versions = {
  raw = { "version 1: the low-level error escapes raw", run_job_raw },
  wrapped = { "version 2: the intermediate module wraps it", run_job },
}

local which = ...
if which then
  -- Let the failure reach the top level: weft prints it and exits 1.
  local v = versions[which] or error("unknown version " .. tostring(which))
  local t = weft.spawn { name = "job runner", fn = v[2], args = { "1" } }
  weft.sleep(0) -- the task fails unjoined: its error goes up to main
  return t
end

for _, key in ipairs { "raw", "wrapped" } do
  local title, run = versions[key][1], versions[key][2]
  local t = weft.spawn { name = "job runner", fn = run, args = { "1" } }
  local _, err = t:join()
  print("== " .. title)
  print("-- what the user sees:")
  print(weft.errors.brief(err))
  print("-- the log entry under the same id:")
  print(weft.errors.record(err))
  print()
end
