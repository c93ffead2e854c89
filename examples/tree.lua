-- tree.lua: a file tree walker over weft.fs that hashes the files on the
-- worker pool (weft.work), over a temporary tree it makes and removes.
--
--   weft examples/tree.lua
--
-- One task walks the tree (weft.fs.readdir and stat never block the
-- loop); each file found is read by a task of its own and hashed by a job
-- on a worker thread, at most four at a time (a group with a limit), so
-- the reading and the hashing overlap. The hash is 32-bit FNV-1a, written
-- in Lua to show CPU work leaving the loop free; use a real digest for
-- anything that matters.

local weft = require "weft"
local fs = weft.fs

--[[ A tree to walk ]]

local root = assert(fs.tmpdir("weft-tree-"))
local files = {
  ["README"] = "a tree for examples/tree.lua\n",
  ["src/main.lua"] = ("print('hello')\n"):rep(100),
  ["src/lib/util.lua"] = ("return {}\n"):rep(1000),
  ["src/lib/empty.lua"] = "",
  ["data/big.bin"] = ("\0\1\2\3\4\5\6\7"):rep(2 ^ 17), -- 1 MiB
  ["data/notes/today.txt"] = "walk, read, hash\n",
}
for path, data in pairs(files) do
  local dir = (root .. "/" .. path):match("^(.*)/")
  assert(fs.mkdir(dir, { parents = true }))
  assert(fs.write_file(root .. "/" .. path, data))
end

--[[ The walker ]]

-- The job: it runs in a worker's own Lua state, so it takes only its
-- argument (a copy of the file's bytes) and modules, which cross by name.
local function fnv1a(data)
  local bit = require "bit"
  local bxor, lshift, tobit = bit.bxor, bit.lshift, bit.tobit
  local h = tobit(0x811c9dc5)
  for i = 1, #data do
    -- h * 16777619 = h * 2^24 + h * 403, kept exact in 32 bits.
    h = bxor(h, data:byte(i))
    h = tobit(h * 403 + lshift(h, 24))
  end
  return bit.tohex(h)
end

local g = weft.group { limit = 4 }
local found = {} -- relative path -> {size=, hash=}

-- walk(dir, rel): every file under dir, each hashed in a task of g's.
local function walk(dir, rel)
  for _, name in ipairs(assert(fs.readdir(dir))) do
    local path, relpath = dir .. "/" .. name, rel .. name
    local st = assert(fs.stat(path))
    if st.type == "directory" then
      walk(path, relpath .. "/")
    else
      g:go(function(ctx)
        local data, err = fs.read_file(path, ctx)
        if not data then return nil, err end
        local hash
        hash, err = weft.work(fnv1a, data)
        if not hash then return nil, err end
        found[relpath] = { size = #data, hash = hash }
      end)
    end
  end
end

local t0 = weft.now()
walk(root, "")
local err = g:wait()
assert(not err, err)

local names = {}
for name in pairs(found) do names[#names + 1] = name end
table.sort(names)
for _, name in ipairs(names) do
  print(("%s %8d  %s"):format(found[name].hash, found[name].size, name))
end
print(("%d files hashed in %.2f s on %d worker threads"):format(#names,
  weft.now() - t0, weft.workers()))

--[[ Clean up: files first, then each directory once it is empty ]]

local function remove_tree(dir)
  for _, name in ipairs(assert(fs.readdir(dir))) do
    local path = dir .. "/" .. name
    if assert(fs.stat(path)).type == "directory" then
      remove_tree(path)
    else
      assert(fs.remove(path))
    end
  end
  assert(fs.remove(dir))
end
remove_tree(root)
assert(not fs.stat(root), "the tree is still there")
