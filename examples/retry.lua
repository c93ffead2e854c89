-- retry.lua: retry a flaky call with exponential backoff.
--
--   weft examples/retry.lua
--
-- Runs on virtual time, so the backoff (0.1 s, 0.2 s, 0.4 s, ...) takes no
-- real time and the printed times are exact.

local weft = require "weft"

local function flaky(fails)
  local calls = 0
  return function(_, attempt)
    calls = calls + 1
    if calls <= fails then
      return nil, weft.error("unavailable", "attempt %d: service unavailable",
        attempt)
    end
    return "response after " .. calls .. " calls"
  end
end

weft.virtual_time(function()
  local opts = { attempts = 5, min = 0.1, max = 1, factor = 2 }

  -- The call form: one function, the last error back when it never works.
  print(weft.retry_call(weft.context(), opts, flaky(3)))
  print("at", weft.now())
  local v, err = weft.retry_call(weft.context(), opts, flaky(10))
  print(v, err.message, "at", weft.now())

  -- The iterator form: the attempt is inline code that decides for itself.
  local call = flaky(2)
  for attempt in weft.retry(weft.context(), opts) do
    local resp, e = call(nil, attempt)
    print(("  attempt %d at %.1f: %s"):format(attempt, weft.now(),
      resp or e.message))
    if resp then break end
  end
end)
