-- Run by ctest under valgrind (tests/CMakeLists.txt, gh-12): a Lua host
-- (stock luajit with the module) steps 2,000 busy tasks, then shuts the
-- runtime down in the middle of it; the state is then closed, which frees
-- the runtime. Valgrind fails the test on any invalid read or write, or a
-- block definitely lost.
local weft = require "weft"
local ch = weft.chan(16)
local ends = 0
for i = 1, 2000 do
  weft.start(function()
    while weft.sleep(0.0005 * (i % 5)) do
      ch:try_send(i)
      if i % 7 == 0 then ch:try_recv() end
    end
    ends = ends + 1
  end)
end
weft.start(function()
  for _ in ch:iter() do end
  ends = ends + 1
end)
for _ = 1, 20 do weft.step(2) end
assert(weft.shutdown(5), "shutdown left tasks running")
assert(ends == 2001, "every task ended: " .. ends)
print("valgrind_shutdown: ok")
