-- Files: tghost.InputFile for uploads (any Bot API parameter that takes a
-- file) and tghost.download, which streams a Telegram file to disk.
local api = require("tghost.api")
local file = require("tghost.file")
local core = require("tghost.core")
local errors = require("tghost.errors")
errors.internal()

local M = {}

M.InputFile = file.InputFile

-- tghost.download(file, dest): file is a File (from getFile), a file_path,
-- or anything with a file_id (getFile is called first). Returns dest, size
-- or nil, message.
function M.download(file, dest)
  if type(dest) ~= "string" then
    errors.raise("tghost.download: expected a destination path as argument 2")
  end
  local path
  if type(file) == "string" then
    path = file
  elseif type(file) == "table" then
    path = file.file_path
    if path == nil then
      if file.file_id == nil then
        errors.raise("tghost.download: expected a File (from getFile), a "
                     .. "file_path or a table with a file_id")
      end
      local f = require("tghost.bot").api.getFile{ file_id = file.file_id }
      path = f.file_path
      if path == nil then
        return nil, "download failed: Telegram gave no file_path (the file "
                    .. "may be too big to download)"
      end
    end
  else
    errors.raise("tghost.download: expected a File, a file_path or a table "
                 .. "with a file_id, got %s", type(file))
  end
  if core.check_mode() then
    return require("tghost.checkstub").not_sent("tghost.download")
  end
  return errors.call(api.download, path, dest)
end

return M
