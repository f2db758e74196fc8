---@meta tghost
-- LuaCATS annotations of the tghost Lua API, for lua-language-server (and
-- editors built on it): completion, hover docs and type checks for bot,
-- ctx, run, sequentialize, conversation and tghost.*. This file is never run; point the
-- language server's workspace.library at its folder (docs/guide/testing.md, "Editor support").
-- tests/lua/types_cover.lua checks that it names everything the API has.

---------------------------------------------------------------------------
-- Middleware and composers
---------------------------------------------------------------------------

---A middleware: `next()` runs the rest of the stack and returns when it is done.
---@alias tghost.Middleware fun(ctx: tghost.Context, next: fun())
---@alias tghost.MiddlewareLike tghost.Middleware|tghost.Composer
---A filter query such as "message:text", ":photo", "callback_query:data", or a list of them (OR).
---@alias tghost.FilterQuery string|string[]
---@alias tghost.Predicate fun(ctx: tghost.Context): boolean?
---A trigger of hears, callbackQuery and the like: a plain string matches the
---whole text exactly (as in grammY); a string that starts with `^`, or
---`tghost.pattern(p)`, is a Lua pattern. Or a list of them.
---@alias tghost.Trigger string|tghost.Pattern|(string|tghost.Pattern)[]

---A Lua pattern for hears, callbackQuery, ... (from `tghost.pattern(p)`).
---@class tghost.Pattern
---@field pattern string

---A composer holds middleware and is itself middleware (grammY's Composer).
---The methods that filter return the composer behind the filter, so calls chain as AND.
---Every method works as `c.on(...)` and as `c:on(...)`.
---@class tghost.Composer
local Composer = {}

---Middleware for every update (`bot.use(require("module"))` works: require's
---second result, the module's file name, is left out).
---@param ... tghost.MiddlewareLike
---@return tghost.Composer
function Composer.use(...) end

---Updates that match a filter query (checked when registered: an invalid query is an error at this line).
---@param query tghost.FilterQuery
---@param ... tghost.MiddlewareLike
---@return tghost.Composer
function Composer.on(query, ...) end

---`/name` and `/name@yourbot`; `ctx.match` is the text after the command.
---A description (a string, or `{ description, descriptions = { de = ... },
---scope }` before the handlers) puts the command in the list Telegram shows
---(setMyCommands, sent after `run()`; see `tghost.commands`):
---`bot.command("start", "Start the bot", fn)`.
---@param names string|string[]
---@param ... tghost.MiddlewareLike|string|{ description: string, descriptions?: table<string, string>, scope?: string|table|table[] }
---@return tghost.Composer
function Composer.command(names, ...) end

---Text or caption equal to a plain string (the whole text, as in grammY), or
---matching a pattern (`"^..."` or `tghost.pattern(p)`); `ctx.match` is
---`{ text }` or the captures.
---@param triggers tghost.Trigger
---@param ... tghost.MiddlewareLike
---@return tghost.Composer
function Composer.hears(triggers, ...) end

---Callback queries by their data: equal to a string, or matching a pattern
---(`"^..."` or `tghost.pattern(p)`; captures in `ctx.match`).
---@param triggers tghost.Trigger
---@param ... tghost.MiddlewareLike
---@return tghost.Composer
function Composer.callbackQuery(triggers, ...) end

---Callback queries from a game's button, by `game_short_name`.
---@param triggers tghost.Trigger
---@param ... tghost.MiddlewareLike
---@return tghost.Composer
function Composer.gameQuery(triggers, ...) end

---Inline queries by their text (a plain string matches it exactly).
---@param triggers tghost.Trigger
---@param ... tghost.MiddlewareLike
---@return tghost.Composer
function Composer.inlineQuery(triggers, ...) end

---Chosen inline results by `result_id`.
---@param triggers tghost.Trigger
---@param ... tghost.MiddlewareLike
---@return tghost.Composer
function Composer.chosenInlineResult(triggers, ...) end

---Pre-checkout queries by `invoice_payload`.
---@param triggers tghost.Trigger
---@param ... tghost.MiddlewareLike
---@return tghost.Composer
function Composer.preCheckoutQuery(triggers, ...) end

---Shipping queries by `invoice_payload`.
---@param triggers tghost.Trigger
---@param ... tghost.MiddlewareLike
---@return tghost.Composer
function Composer.shippingQuery(triggers, ...) end

---`message_reaction` updates in which one of these reactions was added: an
---emoji, a ReactionType table, or a list of them.
---@param reactions string|table|(string|table)[]
---@param ... tghost.MiddlewareLike
---@return tghost.Composer
function Composer.reaction(reactions, ...) end

---Updates from chats of these types.
---@param types "private"|"group"|"supergroup"|"channel"|string[]
---@param ... tghost.MiddlewareLike
---@return tghost.Composer
function Composer.chatType(types, ...) end

---Updates for which `pred(ctx)` is true.
---@param pred tghost.Predicate
---@param ... tghost.MiddlewareLike
---@return tghost.Composer
function Composer.filter(pred, ...) end

---Updates for which `pred(ctx)` is false.
---@param pred tghost.Predicate
---@param ... tghost.MiddlewareLike
---@return tghost.Composer
function Composer.drop(pred, ...) end

---`a` when `pred(ctx)` is true, else `b`.
---@param pred tghost.Predicate
---@param a tghost.MiddlewareLike
---@param b tghost.MiddlewareLike
---@return tghost.Composer
function Composer.branch(pred, a, b) end

---`handlers[router(ctx)]`, or `fallback` (default: the rest of the stack) when
---the key is nil or has no handler.
---@param router fun(ctx: tghost.Context): any
---@param handlers table<any, tghost.MiddlewareLike>
---@param fallback? tghost.MiddlewareLike
---@return tghost.Composer
function Composer.route(router, handlers, fallback) end

---Middleware built for each update by `factory(ctx)`: a middleware, a
---composer, or a list of them (`{}` passes on).
---@param factory fun(ctx: tghost.Context): tghost.MiddlewareLike|tghost.MiddlewareLike[]
---@return tghost.Composer
function Composer.lazy(factory) end

---Runs `...` concurrently with the rest of the stack, in a child task of the
---update; the update is done when both are.
---@param ... tghost.MiddlewareLike
---@return tghost.Composer
function Composer.fork(...) end

---Errors raised in `...` go to `handler(err, next)` instead of `bot.catch`.
---@param handler fun(err: tghost.BotError, next: fun())
---@param ... tghost.MiddlewareLike
---@return tghost.Composer
function Composer.errorBoundary(handler, ...) end

---The whole stack as one middleware function.
---@return tghost.Middleware
function Composer.middleware() end

---------------------------------------------------------------------------
-- The bot
---------------------------------------------------------------------------

---@class tghost.Bot: tghost.Composer
---@field api tghost.Api The Bot API client.
---@field botInfo tg.UserFromGetMe? The bot's User object from getMe (nil until the runner has it).
---@field errorHandler fun(err: tghost.BotError)? Set by `bot.catch`.
local Bot = {}

---Errors nobody else handled: `err.error` is what was raised, `err.ctx` the update's context.
---@param fn fun(err: tghost.BotError)
---@return tghost.Bot
function Bot.catch(fn) end

---Runs the bot one update at a time, like grammY's `bot.start()`.
---`drop_pending_updates` calls deleteWebhook first; `onStart(botInfo)` runs
---before the first update is fetched (neither again on a reload).
---@param opts? { allowed_updates?: string[], timeout?: integer, drop_pending_updates?: boolean, onStart?: fun(botInfo: table) }
---@return tghost.RunHandle
function Bot.start(opts) end

---Stops fetching updates and lets the ones in flight finish (grammY's `bot.stop()`).
function Bot.stop() end

---Fetches the bot's User object (getMe) into `bot.botInfo` unless it is
---there already, and returns it (grammY's `bot.init()`).
---@return tg.UserFromGetMe
function Bot.init() end

---Runs one update through the whole bot as the runner would (a waiting
---conversation may take it), suspends the caller until it has ended, and
---returns its record: the outcome, the error, and every Bot API call made
---meanwhile. The calls are answered by `opts.answer` (a function or a
---table of results by method) or with stand-in results, not sent, unless
---`opts.send` is true. For tests (grammY's `bot.handleUpdate`).
---@param update table
---@param opts? { answer?: (fun(method: string, params: table): any)|table<string, any>, send?: boolean }
---@return tghost.UpdateRecord
function Bot.handleUpdate(update, opts) end

---What `bot.handleUpdate` returns.
---@class tghost.UpdateRecord
---@field outcome "done"|"failed"|"cancelled"|"consumed"
---@field error any What the handler raised, or why it was cut short.
---@field calls { method: string, params: table, result: any, error: any }[]

---Registers the handler of the scheduled jobs named `name`
---(`tghost.jobs.at(when, name, data)`): `fn(job)` runs each, detached
---from any update, under the CPU guard, memory limit and `jobs.timeout`;
---its errors go to `bot.catch` (`err.job`).
---@param name string
---@param fn fun(job: tghost.Job)
---@return tghost.Bot
function Bot.job(name, fn) end

---The bot. Register handlers on it, then call `run(bot)`.
---@type tghost.Bot
bot = {}

---@class tghost.BotError
---@field error any What was raised.
---@field ctx tghost.Context? The update's context (nil for a job's run).
---@field job tghost.Job? The scheduled job whose run failed.
---@field traceback string?

---What a scheduled job's handler gets (`bot.job(name, fn)`).
---@class tghost.Job
---@field id string The job's id.
---@field name string The handler's name.
---@field data any The data given when it was scheduled (nil for none).
---@field scheduledAt number When this run was due (Unix seconds).
---@field attempt integer 1, or more when a run before it never ended.
---@field redelivered boolean True when a run before it never ended (the process died or stopped): it may have run partly.
---@field api tghost.Api `bot.api`.
---@field bot tghost.Bot
local Job = {}
---Sends text to the chat the job's data names (`data.chat_id`,
---`data.chat` or `data.chat.id`).
---@param text string|tghost.FormattedText
---@param extra? table More sendMessage parameters.
---@return tg.Message
function Job:reply(text, extra) end
---Cancels the job's future runs (this one finishes).
---@return boolean
function Job:cancel() end

---A scheduled job as `tghost.jobs.list` shows it.
---@class tghost.JobInfo
---@field id string
---@field name string
---@field data any
---@field next number When it is due next (Unix seconds).
---@field schedule string "once", "every 60 s", "cron 0 9 * * * (Europe/Berlin)".
---@field running boolean A run holds it now (in some process).
---@field attempts integer

---@class tghost.JobOptions
---@field id? string The job's id: scheduling this id again replaces the job (a top-level declaration with the same schedule keeps its place).
---@field prefix? string A new id of this prefix and a number.
---@field tz? string The time zone of cron, daily and local times ("Europe/Berlin"); default: the system's ($TZ, /etc/localtime).
---@field misfire? "once"|"skip"|"all" What a run that starts more than `jobs.grace` late does (default `jobs.misfire`, "once").
---@field misfireLimit? integer With misfire "all": missed occurrences run in a row at most (default 10).
---@field first? number|string `every` only: the first run (as `at`'s time).
---@field days? string|integer[] `daily` only: a cron day-of-week field ("mon-fri") or a list of days (0-7, Sunday 0 or 7).

---Scheduled jobs (`bot.job` runs them). Time: seconds from now (or a Unix
---time from 1e9 on), a duration ("10m", "1h30m", "2d"), a time of day
---("09:30") or a date ("2025-12-24 18:00") in `opts.tz`.
---@class tghost.jobs
local jobs = {}
---Runs the job once, at `when`. Returns its id.
---@param when number|string
---@param name string
---@param data? any Any storable value.
---@param opts? tghost.JobOptions
---@return string
function jobs.at(when, name, data, opts) end
---Runs the job every `interval` (seconds or a duration), first after one interval (or at `opts.first`).
---@param interval number|string
---@param name string
---@param data? any
---@param opts? tghost.JobOptions
---@return string
function jobs.every(interval, name, data, opts) end
---Runs the job on a five-field cron schedule ("0 9 * * 1-5") in `opts.tz`.
---@param expr string
---@param name string
---@param data? any
---@param opts? tghost.JobOptions
---@return string
function jobs.cron(expr, name, data, opts) end
---Runs the job every day (or on `opts.days`) at "HH:MM" in `opts.tz`.
---@param time string
---@param name string
---@param data? any
---@param opts? tghost.JobOptions
---@return string
function jobs.daily(time, name, data, opts) end
---Cancels a job; true if there was one (a run in progress finishes).
---@param id string
---@return boolean
function jobs.cancel(id) end
---The jobs whose id starts with prefix, by id (not at the top level).
---@param prefix? string
---@param limit? integer Default 1000.
---@return tghost.JobInfo[]
function jobs.list(prefix, limit) end
---@param id string
---@return tghost.JobInfo?
function jobs.get(id) end
---The jobs' clock, Unix seconds (the sandbox's `:wait` moves it).
---@return number
function jobs.now() end
---"1h30m" -> 5400; nil for what is not a duration.
---@param text string
---@return number?
function jobs.duration(text) end

---What `ctx:wait` raises when no answer came within `opts.timeout`.
---@class tghost.ConversationTimeout
---@field key string|integer The conversation key.
---@field timeout number Seconds.
---@field ctx tghost.Context The context `wait` was called on.

---What `ctx:wait` raises when its conversation was ended by
---`ctx:cancelConversation()` (reason "cancelled") or by a newer conversation
---on the same key (reason "replaced").
---@class tghost.ConversationCancelled
---@field key string|integer
---@field reason "cancelled"|"replaced"
---@field ctx tghost.Context

---What a durable conversation raises (and `bot.catch` receives) when it
---resumed from its record and its code no longer does what the record
---says (the script changed under it), or the record is of another
---`conversation{ version }`: the dialog ends and its record is deleted.
---@class tghost.ConversationChanged
---@field key string The conversation key.
---@field at integer The step of the record where the code went another way (0: another version).
---@field expected string What the record has there.
---@field got string What the code did.
---@field where string? The script's file:line of that call.

---A failed Bot API call.
---@class tghost.ApiError
---@field method string
---@field error_code integer? Telegram's error code (for kind "api").
---@field kind "api"|"network"|"bad_response"
---@field description string
---@field parameters { retry_after?: number, migrate_to_chat_id?: integer }?

---------------------------------------------------------------------------
-- The Bot API
---------------------------------------------------------------------------

---Every method of the Bot API (types/botapi.lua annotates each one), in
---grammY's two call shapes: `bot.api.sendMessage{ chat_id = id, text = "hi" }`
---or `bot.api.sendMessage(id, "hi", { parse_mode = "HTML" })` (the required
---parameters in the Bot API's order, then a table of the rest). A call
---suspends the handler until the answer is in and returns the decoded
---result, or raises a `tghost.ApiError`. A name the Bot API does not have
---raises ("did you mean ...?") before anything is sent.
---@class tghost.Api
---@field raw table<string, fun(params?: table): any> Any method name, sent as given (a newer or a local Bot API server).
---@field config tghost.ApiConfig
local Api = {}

---`bot.api.config{ ... }`: flood control (docs/guide/bot-api.md) and a default
---parse_mode; returns the settings in force. `bot.api.config.use(fn)`
---installs a transformer.
---@class tghost.ApiConfig
---@overload fun(opts?: { autoRetry?: false|{ maxRetryAttempts?: integer, maxDelaySeconds?: number }, throttle?: boolean|{ globalPerSecond?: integer, chatPerSecond?: number, groupPerMinute?: integer }, parseMode?: "HTML"|"MarkdownV2"|"Markdown"|false }): table
local ApiConfig = {}

---A transformer sees every outgoing call (the last installed first) and
---returns its result, usually `prev(method, params)`: logging, defaults,
---retries, as grammY's `bot.api.config.use`.
---@param fn fun(prev: fun(method: string, params?: table): any, method: string, params?: table): any
---@return tghost.Api
function ApiConfig.use(fn) end

---------------------------------------------------------------------------
-- The context
---------------------------------------------------------------------------

---What a handler receives: the update, getters into it and shortcuts that
---fill in chat_id, message_id and the like. Scripts may add fields of their own.
---@class tghost.Context
---@field update tg.Update The update, decoded (ids are integers).
---@field bot tghost.Bot
---@field api tghost.Api `bot.api`.
---@field me tg.UserFromGetMe The bot's User object (from getMe).
---@field match string|string[]|nil Set by command (a string), and by hears, callbackQuery, inlineQuery and the other triggers (`{ text }` for a plain string, the captures for a pattern).
---@field redelivered boolean True when the update runs again and may have run partly before (false on a first delivery): after a restart (--journal), or in a cluster when an earlier owner of its partition admitted it and lost the partition before it ended.
---@field session any The update's session, with `session{}` in the stack: read on first access, written back after the handlers if it changed; `nil` deletes it.
---@field form tghost.Form Forms in a conversation: ask, wait for a fitting answer, ask again otherwise.
---@field msg tg.Message? The message, edited message, channel post, business message, or the callback query's message.
---@field chat tg.Chat? The chat the update is about.
---@field from tg.User? The user the update is from.
---@field senderChat tg.Chat?
---@field msgId integer?
---@field chatId integer?
---@field inlineMessageId string?
---@field businessConnectionId string?
---@field message tg.Message?
---@field editedMessage tg.Message?
---@field channelPost tg.Message?
---@field editedChannelPost tg.Message?
---@field businessConnection tg.BusinessConnection?
---@field businessMessage tg.Message?
---@field editedBusinessMessage tg.Message?
---@field deletedBusinessMessages tg.BusinessMessagesDeleted?
---@field messageReaction tg.MessageReactionUpdated?
---@field messageReactionCount tg.MessageReactionCountUpdated?
---@field inlineQuery tg.InlineQuery?
---@field chosenInlineResult tg.ChosenInlineResult?
---@field callbackQuery tg.CallbackQuery?
---@field shippingQuery tg.ShippingQuery?
---@field preCheckoutQuery tg.PreCheckoutQuery?
---@field purchasedPaidMedia tg.PaidMediaPurchased?
---@field poll tg.Poll?
---@field pollAnswer tg.PollAnswer?
---@field myChatMember tg.ChatMemberUpdated?
---@field chatMember tg.ChatMemberUpdated?
---@field chatJoinRequest tg.ChatJoinRequest?
---@field chatBoost tg.ChatBoostUpdated?
---@field removedChatBoost tg.ChatBoostRemoved?
local Context = {}

---An answer shown while it grows (a draft in private chats, else a message edited at most every `interval` s), then sent for good, cut into several messages past 4096 characters. Pieces are strings or formatted text ({ text, entities }). Failed previews never fail it.
---@param source (fun(): (string|table)?)|(string|table)[] The pieces: an iterator, or a list.
---@param opts? { draft?: boolean, interval?: number, reply_markup?: table, reply_parameters?: table, link_preview_options?: table, message_thread_id?: integer } Further sendMessage parameters go to the final message(s).
---@return table[] messages The final messages.
function Context:replyStream(source, opts) end
---`ctx:react("👍")`, a list of emoji or reaction objects, or `{}` to remove.
---@param reaction string|table
---@param extra? table
---@return boolean
function Context:react(reaction, extra) end
---@param extra? string|{ text?: string, show_alert?: boolean, url?: string, cache_time?: integer }
---@return boolean
function Context:answerCallbackQuery(extra) end
---The markup itself (`ctx:editMessageReplyMarkup(kb)`) or `{ reply_markup = kb }`; nothing removes the buttons.
---@param markup? table
---@return table|boolean
function Context:editMessageReplyMarkup(markup) end
---Whether this update matches a filter query.
---@param query tghost.FilterQuery
---@return boolean
function Context:has(query) end
---getFile for the file in this update's message (the largest photo size, or the document, video, ...).
---@return tg.File
function Context:getFile() end
---The entities of the message's text or caption, each with its `text`.
---@param types? string|string[] Only these types ("url", "bold", ...).
---@return (tg.MessageEntity|{ text: string })[]
function Context:entities(types) end
---What changed in a message_reaction update, as grammY's `ctx.reactions()`.
---@return { emoji: string[], emojiAdded: string[], emojiKept: string[], emojiRemoved: string[], customEmoji: string[], customEmojiAdded: string[], customEmojiKept: string[], customEmojiRemoved: string[], paid: boolean, paidAdded: boolean }
function Context:reactions() end
---getCustomEmojiStickers for the custom emoji in this update's message.
---@return tg.Sticker[]
function Context:getCustomEmojiStickers() end
---`ctx:answerPreCheckoutQuery(false, "Sold out")` also works (the error message).
---@param ok boolean
---@param other? string|tg.AnswerPreCheckoutQueryOther
---@return boolean
function Context:answerPreCheckoutQuery(ok, other) end
---Whether the text or caption matches (as `bot.hears`; sets ctx.match).
---@param trigger tghost.Trigger
---@return boolean
function Context:hasText(trigger) end
---Whether this is the command (as `bot.command`; sets ctx.match).
---@param names string|string[]
---@return boolean
function Context:hasCommand(names) end
---@param trigger tghost.Trigger
---@return boolean
function Context:hasCallbackQuery(trigger) end
---@param trigger tghost.Trigger
---@return boolean
function Context:hasGameQuery(trigger) end
---@param trigger tghost.Trigger
---@return boolean
function Context:hasInlineQuery(trigger) end
---@param trigger tghost.Trigger
---@return boolean
function Context:hasChosenInlineResult(trigger) end
---@param trigger tghost.Trigger
---@return boolean
function Context:hasPreCheckoutQuery(trigger) end
---@param trigger tghost.Trigger
---@return boolean
function Context:hasShippingQuery(trigger) end
---@param reaction string|table|(string|table)[]
---@return boolean
function Context:hasReaction(reaction) end
---@param types "private"|"group"|"supergroup"|"channel"|string[]
---@return boolean
function Context:hasChatType(types) end

---@class tghost.WaitOptions
---@field timeout? number|false Seconds (default `conversation{ timeout }`, 24 h); false: none. Then `ctx:wait` raises a `tghost.ConversationTimeout`.
---@field key? string|integer A key of the bot's key function to wait on (default: its key for this update, "chat id:user id"). An integer and its decimal string are one key.
---@field chat? integer|string|true Wait for anyone in this chat (true: this update's chat), whatever the key function.
---@field user? integer|string|true Wait for this user in any chat (true: this update's user); with `chat`, that user in that chat.
---@field otherwise? fun(ctx: tghost.Context) Called (inside this handler) for updates of the key that do not match; the wait goes on.
---@field commands? boolean true: a message starting with a /command may answer (by default commands run through the middleware).

---Suspends this handler until the next update of its conversation key (the
---same user in the same chat, by default) that matches the filter, and
---returns that update's context; the update starts no handler of its own.
---Raises `tghost.ConversationTimeout` after `opts.timeout` seconds, and
---`tghost.ConversationCancelled` when the conversation is cancelled or
---replaced by a newer one on the same key.
---@param filter tghost.FilterQuery|tghost.FilterQuery[]|tghost.Predicate
---@param opts? tghost.WaitOptions
---@return tghost.Context
function Context:wait(filter, opts) end
---Ends the conversation of key (default: the one this update belongs to;
---a table names it as `ctx:wait`'s options do): its `ctx:wait` raises
---`tghost.ConversationCancelled` (reason "cancelled"). False if there was
---none.
---@param key? string|integer|{ key?: string|integer, chat?: integer|string|true, user?: integer|string|true }
---@return boolean
function Context:cancelConversation(key) end

---The message `key` in this update's locale (see `tghost.i18n`), its
---`{name}` placeholders filled from args; a plural message is chosen by
---`args.count` with the locale's CLDR rules.
---@param key string A key of the locale files ("menu.title" for nested tables).
---@param args? table<string, any>
---@return string
function Context:t(key, args) end

---On a context `ctx:wait` returned: hands its update back, to run through
---the bot's middleware (inside this handler, in its turn) as if the dialog
---had not taken it.
function Context:skip() end

---Forms: each sends `prompt` (if given), waits in the conversation for an
---answer that fits, answers the others with `retry` (a default, or false),
---and returns the value and the answer's context. `timeout`, `key`,
---`chat`, `user`, `commands` go to `ctx:wait`.
---@class tghost.Form
local Form = {}
---@alias tghost.FormOptions { prompt?: any, promptOptions?: table, retry?: string|false, timeout?: number, key?: any, chat?: any, user?: any, commands?: boolean }
---A text message.
---@param opts? tghost.FormOptions|string
---@return string, tghost.Context
function Form:text(opts) end
---A number (`integer`, `min`, `max`).
---@param opts? tghost.FormOptions|{ integer?: boolean, min?: number, max?: number }|string
---@return number, tghost.Context
function Form:number(opts) end
---One of `options` (strings, or `{ label =, value = }`), pressed on inline
---buttons (`buttons = false`: none; `columns`) or typed.
---@param options (string|{ label: string, value: any })[]
---@param opts? tghost.FormOptions|{ buttons?: boolean, columns?: integer }|string
---@return any, tghost.Context
function Form:select(options, opts) end
---Yes or no (buttons `yes`/`no` labels, or typed).
---@param opts? tghost.FormOptions|{ buttons?: boolean, yes?: string, no?: string }|string
---@return boolean, tghost.Context
function Form:confirm(opts) end
---A photo: its largest PhotoSize.
---@param opts? tghost.FormOptions|string
---@return table, tghost.Context
function Form:photo(opts) end

---------------------------------------------------------------------------
-- Keyboards
---------------------------------------------------------------------------

---@class tghost.InlineKeyboard
---@field inline_keyboard table[][]
local InlineKeyboard = {}
---A callback button; data defaults to the label (1-64 bytes).
---@param label string
---@param data? string
---@return tghost.InlineKeyboard
function InlineKeyboard:text(label, data) end
---@param label string
---@param url string
---@return tghost.InlineKeyboard
function InlineKeyboard:url(label, url) end
---@param label string
---@param url string
---@return tghost.InlineKeyboard
function InlineKeyboard:webApp(label, url) end
---@param label string
---@param url string
---@return tghost.InlineKeyboard
function InlineKeyboard:login(label, url) end
---@param label string
---@param query? string
---@return tghost.InlineKeyboard
function InlineKeyboard:switchInline(label, query) end
---@param label string
---@param query? string
---@return tghost.InlineKeyboard
function InlineKeyboard:switchInlineCurrent(label, query) end
---@param label string
---@param opts? table
---@return tghost.InlineKeyboard
function InlineKeyboard:switchInlineChosen(label, opts) end
---@param label string
---@param text string
---@return tghost.InlineKeyboard
function InlineKeyboard:copyText(label, text) end
---@param label string
---@return tghost.InlineKeyboard
function InlineKeyboard:game(label) end
---@param label string
---@return tghost.InlineKeyboard
function InlineKeyboard:pay(label) end
---Starts a new row (buttons given here go into it).
---@return tghost.InlineKeyboard
function InlineKeyboard:row(...) end
---Adds ready-made button objects to the current row.
---@return tghost.InlineKeyboard
function InlineKeyboard:add(...) end

---@class tghost.Keyboard
---@field keyboard table[][]
local Keyboard = {}
---@param label string
---@return tghost.Keyboard
function Keyboard:text(label) end
---@param label string
---@return tghost.Keyboard
function Keyboard:requestContact(label) end
---@param label string
---@return tghost.Keyboard
function Keyboard:requestLocation(label) end
---@param label string
---@param type? "quiz"|"regular"
---@return tghost.Keyboard
function Keyboard:requestPoll(label, type) end
---@param label string
---@param id integer
---@param opts? table
---@return tghost.Keyboard
function Keyboard:requestUsers(label, id, opts) end
---@param label string
---@param id integer
---@param opts? table
---@return tghost.Keyboard
function Keyboard:requestChat(label, id, opts) end
---@param label string
---@param url string
---@return tghost.Keyboard
function Keyboard:webApp(label, url) end
---@param value? boolean
---@return tghost.Keyboard
function Keyboard:resized(value) end
---@param value? boolean
---@return tghost.Keyboard
function Keyboard:oneTime(value) end
---@param value? boolean
---@return tghost.Keyboard
function Keyboard:persistent(value) end
---@param value? boolean
---@return tghost.Keyboard
function Keyboard:selective(value) end
---@param text string
---@return tghost.Keyboard
function Keyboard:placeholder(text) end
---@return tghost.Keyboard
function Keyboard:row(...) end
---@return tghost.Keyboard
function Keyboard:add(...) end

---------------------------------------------------------------------------
-- run() and sequentialize()
---------------------------------------------------------------------------

---@class tghost.RunOptions
---@field drop_pending_updates? boolean deleteWebhook{ drop_pending_updates = true } before the first poll.
---@field source? { speedTrafficBalance?: number, maxDelayMilliseconds?: integer }
---@field runner? { fetch?: { timeout?: integer, allowed_updates?: string[] }, retryInterval?: "exponential"|"quadratic"|integer, maxRetryTime?: integer, silent?: boolean }
---@field sink? { kind?: "concurrent"|"sequential"|"batch", concurrency?: integer, maxWaiting?: integer, timeout?: { milliseconds: integer, handler?: fun(ctx: tghost.Context, why: string) } }
---@field journal? string A file that makes delivery survive a crash (`--journal FILE` wins).
---@field webhook? { url: string, listen: string, secretFile?: string } Receive updates as POSTs to `url` (https) on `listen` ("ADDR:PORT") instead of polling; `secretFile` holds the secret token (default: a random one). `--webhook` wins.
---@field feed? boolean Updates come from `tghost.feed.push` instead of Telegram.
---@field jobs? { storage?: tghost.Storage, concurrency?: integer, timeout?: integer, lease?: integer, poll?: integer, misfire?: "once"|"skip"|"all", misfireLimit?: integer, grace?: integer } Scheduled jobs: where they are kept (memory, sqlite, redis; default memory), runs at once (100), per-run timeout in ms (default sink.timeout's), a claim's lease in ms (30000), how often a shared store is looked at in ms (1000), the default misfire policy and its limit, and how late a run may start in ms before it counts as misfired (60000).
---@field cluster? tghost.ClusterOptions Run one bot on several processes through Redis 7 (`--cluster URL` gives the URL and wins).

---@class tghost.ClusterOptions
---@field url? string The Redis: "redis://[[user]:password@]host[:port][/db]" or "unix:///path/redis.sock[?db=N]" (`--cluster` wins).
---@field partitions? integer Partition streams, fixed for a bot once its cluster exists (64).
---@field lease? number Seconds a lease lasts: a dead or paused process's partitions move after about this long (10).
---@field maxAttempts? integer Runs of a suspect update, alone in its process, that may end the process before it becomes a dead letter (2).
---@field moveDelay? number Seconds a partition with conversations waiting for their user stays where it is when it should move (60).
---@field key? fun(ctx: tghost.Context): string|integer|nil The cluster key: updates sharing it keep their order across processes (default: the chat, else the user, else the update). Sees the update alone (no middleware ran); may not yield.

---@class tghost.RunHandle
local RunHandle = {}
---Stops fetching and waits until the updates in flight are done.
function RunHandle:stop() end
---@return boolean
function RunHandle:isRunning() end
---Updates in flight.
---@return integer
function RunHandle:size() end
---A waitable (`tghost.wait(handle:task())`) that completes once the runner
---has stopped; not at the script's top level.
---@return tghost.Waitable
function RunHandle:task() end
---Starts the bot again after a stop: at once if the stop has completed,
---else when it does (the process stays up meanwhile). False if it runs or
---a start is asked for already.
---@return boolean
function RunHandle:start() end

---@class tghost.Waitable
local Waitable = {}
---Returns once it has completed.
function Waitable:wait() end

---Starts long polling with grammY runner's pipeline (concurrent by default).
---@param b tghost.Bot
---@param opts? tghost.RunOptions
---@return tghost.RunHandle
function run(b, opts) end

---Updates that share a key run one after another; others run concurrently.
---@param keyfn fun(ctx: tghost.Context): (string|integer|(string|integer)[]|nil)
---@return tghost.Middleware
function sequentialize(keyfn) end

---@class tghost.ConversationOptions
---@field key? fun(ctx: tghost.Context): (string|integer|nil) The conversation key of an update (default: "chat id:user id"; nil: it belongs to none).
---@field timeout? number|false The default timeout of every `ctx:wait`, in seconds (default 24 h); false: none.
---@field storage? tghost.Storage|table Makes every dialog durable: its record is kept here and it resumes after a restart, a crash, a reload or on another process by replaying it.
---@field prefix? string Before each record's key (default "dialog:").
---@field version? string|integer Records of another version are not replayed (they end with `tghost.ConversationChanged`).

---The bot's conversation settings (see `tghost.ConversationOptions`).
---@param opts tghost.ConversationOptions
function conversation(opts) end

---------------------------------------------------------------------------
-- session() and storages
---------------------------------------------------------------------------

---A key-value store for plain Lua data (tables, strings, booleans, numbers).
---Memory calls are immediate; SQLite, Redis and custom calls suspend the
---handler. Keys are strings; an integer key means its decimal string.
---@class tghost.Storage
---@field label string What messages call it: `memory storage "votes"`.
local Storage = {}
---The value stored under key (a fresh copy), or nil.
---@param key string|integer
---@return any
function Storage:get(key) end
---Stores value (nil deletes); ttl_seconds gives it a time to live. A value
---storage cannot keep (a function, a cycle, ...) raises, naming the path.
---@param key string|integer
---@param value any
---@param ttl_seconds? number
function Storage:set(key, value, ttl_seconds) end
---@param key string|integer
function Storage:delete(key) end
---Compare-and-set, atomic in every storage: stores new (nil deletes) only
---if key still holds expected (nil: nothing), compared as stored data.
---Returns true, or false and what key holds instead.
---@param key string|integer
---@param expected any
---@param new any
---@param ttl_seconds? number
---@return boolean swapped
---@return any current
function Storage:cas(key, expected, new, ttl_seconds) end
---Read, fn(value) -> new value (nil deletes), compare-and-set; fn runs again
---on what is there now if another writer came first. Returns what was stored.
---@param key string|integer
---@param fn fun(value: any): any
---@param ttl_seconds? number
---@return any
function Storage:update(key, fn, ttl_seconds) end
---One page of the keys that start with prefix, and the cursor of the next
---page (nil: none). Memory, SQLite and custom list in byte order; Redis in
---its own order and may repeat a key.
---@param prefix? string
---@param opts? { limit?: integer, cursor?: string } limit 1..10000 (100)
---@return string[] keys
---@return string? cursor
function Storage:list(prefix, opts) end
---Every key that starts with prefix, once each: `for key in store:keys("chat:") do`.
---@param prefix? string
---@return fun(): string?
function Storage:keys(prefix) end

---A storage backend written in Lua, for tghost.storage.custom (or given
---directly as session{ storage = ... }): methods called with a colon that
---keep strings and may suspend. ttl_seconds is nil for no expiry. list and
---cas are needed only by what uses them (store:list, store:cas, update).
---@class tghost.StorageBackend
---@field get fun(self: tghost.StorageBackend, key: string): string?
---@field set fun(self: tghost.StorageBackend, key: string, value: string, ttl_seconds?: number)
---@field delete fun(self: tghost.StorageBackend, key: string)
---@field list? fun(self: tghost.StorageBackend, prefix: string, limit: integer, cursor?: string): string[], string?
---@field cas? fun(self: tghost.StorageBackend, key: string, expected?: string, new?: string, ttl_seconds?: number): boolean, string?

---The older custom storage for sessions: values in and out (copies).
---@class tghost.CustomStorage
---@field read fun(self: tghost.CustomStorage, key: string): any
---@field write fun(self: tghost.CustomStorage, key: string, value: any, ttl_seconds?: number)
---@field delete fun(self: tghost.CustomStorage, key: string)

---@class tghost.storage
local storage = {}
---A store kept in C for the life of the process: it survives hot reloads
---(the same name gives the same store).
---@param name string
---@return tghost.Storage
function storage.memory(name) end
---A table (default "kv") in an SQLite file; disk I/O runs off the loop.
---@param path string
---@param table_name? string
---@return tghost.Storage
function storage.sqlite(path, table_name) end
---A Redis server ("redis://[[user]:password@]host[:port][/db]", or its
---socket: "unix://[[user]:password@]/path/to/redis.sock[?db=N]"; a password
---with @ : / is percent-encoded); keys get prefix (default "tghost:").
---Reconnects by itself; calls raise while it is down.
---@param url string
---@param prefix? string
---@return tghost.Storage
function storage.redis(url, prefix) end
---A store over a backend written in Lua.
---@param backend tghost.StorageBackend
---@param name? string For messages: custom storage "name".
---@return tghost.Storage
function storage.custom(backend, name) end

---@class tghost.SessionOptions
---@field initial? fun(ctx: tghost.Context): any The value of a session storage has nothing for.
---@field getSessionKey? fun(ctx: tghost.Context): (string|integer|nil) Default: the chat id as a string.
---@field storage? tghost.Storage|tghost.StorageBackend|tghost.CustomStorage Default: tghost.storage.memory("session").
---@field ttl? number Seconds each write lives.
---@field prefix? string Put before every key.
---@field migrations? table<integer, fun(old: any, ctx: tghost.Context): any> Versions 1, 2, ...: a value stored with an older version (none: 0) goes through each newer one on read, and is written back with the newest.
---@field type? "single"|"multi" "multi": the other keys name sessions, each with options of its own (`ctx.session.NAME`).

---Middleware that gives ctx.session (grammY's session): read on first
---access, written back after the rest of the stack if it changed (also
---after an error; not when the update is cancelled). Put sequentialize with
---the same key function before it. `session{ type = "multi", settings =
---{ ... }, cart = { ... } }` gives several named sessions, each with its
---own storage, key, initial value, ttl and migrations.
---@param opts? tghost.SessionOptions|table<string, tghost.SessionOptions|string>
---@return tghost.Middleware
function session(opts) end

---------------------------------------------------------------------------
-- tghost.*
---------------------------------------------------------------------------

---@class tghost.InputFile
---@field path string?
---@field filename string?

---@class tghost.Task
local Task = {}
---The task's results (raises its error).
---@return any ...
function Task:wait() end
---@return "running"|"done"|"failed"|"cancelled"
function Task:status() end

---@class tghost.HttpResponse
---@field status integer
---@field headers table<string, string> Keyed by lower-case name.
---@field body string

---@class tghost.HttpRequest
---@field method? string
---@field url string
---@field headers? table<string, string>
---@field body? string|table|tghost.InputFile|fun(): string? A string, a table (sent as JSON), an InputFile (streamed from disk) or a function called for each piece until it returns nil (sent chunked).
---@field query? table<string, string|number>
---@field timeout? number Seconds (streams: none by default).
---@field max_body? integer Bytes.
---@field first_byte_timeout? number Streams: seconds until the answer's head (default 30; 0: none).
---@field idle_timeout? number Streams: seconds of silence allowed between pieces of the body (default 60; 0: none).
---@field max_event? integer `sse`: bytes of one event or line (default 1 MiB).

---A response whose body is read as it arrives (`tghost.http.stream`); `<close>` ends the transfer.
---@class tghost.HttpStream
---@field status integer
---@field headers table<string, string> Keyed by lower-case name.
local HttpStream = {}
---The next piece of the body; nil at the end; nil, message when the transfer failed.
---@return string? chunk
---@return string? error
function HttpStream:read() end
---`for chunk in res:chunks() do ... end`; a failure raises; leaving the loop closes the transfer.
---@return fun(): string?
function HttpStream:chunks() end
---Ends the transfer now (the connection is closed).
function HttpStream:close() end

---A server-sent event.
---@class tghost.SseEvent
---@field event string The event type ("message" by default).
---@field data string Its data lines, joined with "\n".
---@field id? string The last event ID, if the stream set one.
---@field retry? integer The reconnection time the stream asked for (ms).

---@class tghost.http
local http = {}
---@param req tghost.HttpRequest
---@return tghost.HttpResponse? response
---@return string? error
function http.request(req) end
---@param url string
---@param opts? tghost.HttpRequest
---@return tghost.HttpResponse? response
---@return string? error
function http.get(url, opts) end
---@param url string
---@param body string|table|tghost.InputFile|fun(): string?
---@param opts? tghost.HttpRequest
---@return tghost.HttpResponse? response
---@return string? error
function http.post(url, body, opts) end
---A request whose answer is read as it arrives, with backpressure: returns once the head is in.
---@param req tghost.HttpRequest
---@return tghost.HttpStream? response
---@return string? error
function http.stream(req) end
---Server-sent events: `for ev in tghost.http.sse{...} do ... end`. Raises on a failure, a status other than 2xx or an answer that is not an event stream.
---@param req tghost.HttpRequest
---@return fun(): tghost.SseEvent? events
---@return tghost.HttpStream response
function http.sse(req) end

---What `tghost.exec` returns.
---@class tghost.ExecResult
---@field status? integer The exit code (nil when a signal ended it).
---@field signal? string "SIGKILL", ... when a signal ended it.
---@field stdout? string Unless a stdout function took it.
---@field stderr? string Unless a stderr function took it.

---A command and its options: `{ "program", "arg", ..., timeout = 10 }`.
---@class tghost.ExecSpec
---@field [integer] string|number The program (looked up in PATH) and its arguments; no shell.
---@field stdin? string|true|fun(): string? What the program reads: a string, a function called for each piece (nil at the end), or true (`p:write`, start only).
---@field stdout? fun(chunk: string) Called with each piece of output instead of collecting it.
---@field stderr? fun(chunk: string)
---@field env? table<string, string|false> Added to the environment (false removes a name); the bot token is never passed on.
---@field cwd? string
---@field timeout? number Seconds; then the program is killed.
---@field max_output? integer Bytes collected at most (default 16 MiB).

---A running program (`tghost.exec.start`); `<close>` kills it.
---@class tghost.Process
---@field pid integer
local Process = {}
---The next piece of output as the program writes it, and which stream; nil once it has exited.
---@return string? chunk
---@return "stdout"|"stderr"|nil stream
function Process:read() end
---`for chunk, stream in p:chunks() do ... end`
---@return fun(): string?, string?
function Process:chunks() end
---Writes to the program's stdin (waits while more than 64 KiB are queued).
---@param data string
---@return true? ok
---@return string? error
function Process:write(data) end
function Process:closeStdin() end
---Waits for the end (output not read is discarded).
---@return tghost.ExecResult result
function Process:wait() end
---@param signal? string|integer "SIGTERM" by default; sent to the program's process group.
function Process:kill(signal) end

---Runs a program without a shell, suspending only the calling handler; nil, message when it cannot start, times out or writes more than max_output. `tghost.exec.start{...}` returns a `tghost.Process` instead.
---@class tghost.exec
---@overload fun(spec: tghost.ExecSpec): tghost.ExecResult?, string?
local exec = {}
---@param spec tghost.ExecSpec
---@return tghost.Process? process
---@return string? error
function exec.start(spec) end

---JSON with exact 64-bit integers (Telegram ids stay integers).
---@class tghost.json
---@field null lightuserdata JSON null inside decoded arrays (null members of objects are left out).
local json = {}
---@param text string
---@return any
function json.decode(text) end
---@param value any
---@return string
function json.encode(value) end
---Marks t to encode as a JSON array even when empty (returns t).
---@generic T: table
---@param t? T
---@return T
function json.array(t) end
---Marks t to encode as a JSON object even when empty (returns t).
---@generic T: table
---@param t? T
---@return T
function json.object(t) end


---@class tghost.log
local log = {}
---@param ... any
function log.debug(...) end
---@param ... any
function log.info(...) end
---@param ... any
function log.warn(...) end
---@param ... any
function log.error(...) end

---The Bot API version tghost was generated for, and its methods.
---@class tghost.botapi
---@field version string "10.2"
local botapi = {}
---Every method name, in case-insensitive order.
---@return string[]
function botapi.methods() end
---A method's name as the Bot API spells it, its result type, its
---parameters in order, and the names its positional call takes, as
---grammY's Api does (an optional one ends in "?"; nil: the Bot API has no
---such method).
---@param name string
---@return { name: string, result: string, params: { name: string, required: boolean }[], positional: string[] }?
function botapi.method(name) end

---Formatted text: `fmt(...)` joins strings and formatted strings; the
---entity builders wrap their parts. Offsets count UTF-16 code units.
---@class tghost.FormattedString
---@field text string
---@field entities tg.MessageEntity[]
---@operator concat(string|tghost.FormattedString): tghost.FormattedString

---@class tghost.fmt
---@overload fun(...: string|tghost.FormattedString|number): tghost.FormattedString
local fmt = {}
---@param ... string|tghost.FormattedString
---@return tghost.FormattedString
function fmt.bold(...) end
---@param ... string|tghost.FormattedString
---@return tghost.FormattedString
function fmt.italic(...) end
---@param ... string|tghost.FormattedString
---@return tghost.FormattedString
function fmt.underline(...) end
---@param ... string|tghost.FormattedString
---@return tghost.FormattedString
function fmt.strikethrough(...) end
---@param ... string|tghost.FormattedString
---@return tghost.FormattedString
function fmt.spoiler(...) end
---@param ... string|tghost.FormattedString
---@return tghost.FormattedString
function fmt.code(...) end
---@param ... string|tghost.FormattedString
---@return tghost.FormattedString
function fmt.blockquote(...) end
---@param ... string|tghost.FormattedString
---@return tghost.FormattedString
function fmt.expandableBlockquote(...) end
---@param text string
---@param language? string
---@return tghost.FormattedString
function fmt.pre(text, language) end
---@param text string|tghost.FormattedString
---@param url string
---@return tghost.FormattedString
function fmt.link(text, url) end
---A mention of a user by id (for users without a username).
---@param text string|tghost.FormattedString
---@param user tg.User|integer
---@return tghost.FormattedString
function fmt.mention(text, user) end
---@param placeholder string An emoji shown where custom emoji are not.
---@param custom_emoji_id string|integer
---@return tghost.FormattedString
function fmt.customEmoji(placeholder, custom_emoji_id) end

---@class tghost.html
local html = {}
---`& < > "` as HTML entities: text safe inside parse_mode "HTML".
---@param s string
---@return string
function html.escape(s) end

---@class tghost.markdown
local markdown = {}
---Every MarkdownV2 reserved character escaped; where "code" (inside code
---or pre: only ` and \) or "url" (inside a link's (...): only ) and \).
---@param s string
---@param where? "code"|"url"
---@return string
function markdown.escape(s, where) end

---@class tghost.webapp
local webapp = {}
---Checks a Web App's `initData` (Telegram.WebApp.initData) against the bot
---token: its fields (user decoded) or nil and "no hash", "bad hash" or
---"expired" (auth_date older than max_age seconds, 86400 by default; false:
---no age check).
---@param init_data string
---@param opts? number|false|{ maxAge?: number|false, token?: string }
---@return table? fields
---@return string? why_not
function webapp.validate(init_data, opts) end

---@class tghost.login
local login = {}
---Checks the Telegram Login Widget's fields (a table or a query string):
---the fields (id an integer) or nil and why not, as `tghost.webapp.validate`.
---@param fields table|string
---@param opts? number|false|{ maxAge?: number|false, token?: string }
---@return table? fields
---@return string? why_not
function login.validate(fields, opts) end

---@class tghost
---@field _VERSION string
---@field botapi tghost.botapi The Bot API version and its methods.
---@field fmt tghost.fmt Formatted text without a parse mode.
---@field html tghost.html
---@field markdown tghost.markdown
---@field webapp tghost.webapp
---@field login tghost.login
---@field json tghost.json
---@field http tghost.http
---@field exec tghost.exec Child processes: `tghost.exec{ "prog", "arg" }`, `tghost.exec.start{...}`.
---@field log tghost.log
---@field bot tghost.Bot The same as the global `bot`.
---@field storage tghost.storage Key-value storages: memory, sqlite, redis, custom.
---@field jobs tghost.jobs Scheduled jobs: at, every, cron, daily, cancel, list.
---@field ConversationTimeout table The metatable of what `ctx:wait` raises on a timeout: `getmetatable(err) == tghost.ConversationTimeout`.
---@field ConversationCancelled table The metatable of what `ctx:wait` raises when its conversation is cancelled or replaced.
---@field ConversationChanged table The metatable of what a durable conversation raises when its code no longer replays its record.
---@field ApiError table The metatable of what a failed Bot API call raises: `getmetatable(err) == tghost.ApiError`.
---@field commands tghost.commands Command descriptions, the command list, "did you mean".
---@field feed tghost.feed Updates pushed by the script (`run(bot, { feed = true })`).
tghost = {}

---Suspends the calling handler (never the bot) for a number of seconds.
---@param seconds number
function tghost.sleep(seconds) end

---Seconds on a monotonic clock, with sub-millisecond precision.
---@return number
function tghost.now() end

---A new composer (a module of handlers to `bot.use`).
---@param ... tghost.MiddlewareLike
---@return tghost.Composer
function tghost.Composer(...) end

---@param rows? table[][]
---@return tghost.InlineKeyboard
function tghost.InlineKeyboard(rows) end

---@param rows? table[][]
---@return tghost.Keyboard
function tghost.Keyboard(rows) end

---A menu: an inline keyboard declared once, with a handler per button,
---submenus, back, and buttons built from data when it is shown. `bot.use`
---it, and pass it as `reply_markup`. `opts.text`: the message's text when
---the menu is shown by navigation (a string or a function of ctx).
---@param id string Stable across reloads and restarts (at most 32 bytes, no "/").
---@param opts? { text?: string|fun(ctx: tghost.Context): string }
---@return tghost.Menu
function tghost.Menu(id, opts) end

---@alias tghost.MenuLabel string|fun(ctx: tghost.Context): string

---@class tghost.Menu
---@field id string
local Menu = {}
---A button that runs `handler(ctx)` when pressed (`ctx.menu` controls the
---menu; the press is answered after the handler unless it answered).
---`label` may be `{ text = ..., payload = ... }`: the payload is `ctx.match`.
---@param label tghost.MenuLabel|{ text: tghost.MenuLabel, payload: string|integer }
---@param handler fun(ctx: tghost.Context)
---@return tghost.Menu
function Menu:text(label, handler) end
---A button that shows menu `id` in place of this one (after `handler`).
---@param label tghost.MenuLabel
---@param id string
---@param handler? fun(ctx: tghost.Context)
---@return tghost.Menu
function Menu:submenu(label, id, handler) end
---A button that shows the parent menu (the one this menu is registered with).
---@param label tghost.MenuLabel
---@param handler? fun(ctx: tghost.Context)
---@return tghost.Menu
function Menu:back(label, handler) end
---@param label tghost.MenuLabel
---@param url string
---@return tghost.Menu
function Menu:url(label, url) end
---@param label tghost.MenuLabel
---@param url string
---@return tghost.Menu
function Menu:webApp(label, url) end
---@param label tghost.MenuLabel
---@param text string
---@return tghost.Menu
function Menu:copyText(label, text) end
---@param label tghost.MenuLabel
---@param query string
---@return tghost.Menu
function Menu:switchInline(label, query) end
---@param label tghost.MenuLabel
---@param query string
---@return tghost.Menu
function Menu:switchInlineCurrent(label, query) end
---The next button starts a new row.
---@return tghost.Menu
function Menu:row() end
---Buttons built when the menu is rendered: `fn(ctx, range)` adds them to
---`range` (which has the same button methods).
---@param fn fun(ctx: tghost.Context, range: tghost.Menu)
---@return tghost.Menu
function Menu:dynamic(fn) end
---Makes menus submenus of this one (their `back` comes here).
---@param ... tghost.Menu
---@return tghost.Menu
function Menu:register(...) end
---The InlineKeyboardMarkup of the menu for ctx.
---@param ctx? tghost.Context
---@return table
function Menu:render(ctx) end
---The menu's middleware (what `bot.use(menu)` installs).
---@return tghost.Middleware
function Menu:middleware() end

---What a menu button's handler finds as `ctx.menu`.
---@class tghost.MenuControl
---@field id string The menu shown now.
local MenuControl = {}
---Renders the menu shown again (after its state changed).
function MenuControl.update() end
---Shows menu `id` in this message.
---@param id string
function MenuControl.nav(id) end
---Shows the parent menu.
function MenuControl.back() end
---Removes the menu's buttons from the message.
function MenuControl.close() end

---Translations from a folder of Lua table files (`locales/en.lua` returns
---`{ key = "text with {name}", apples = { one = ..., other = ... } }`), the
---update's locale from the session's override (`useSession`) or the user's
---`language_code`, else `defaultLocale`. `bot.use` it; then `ctx:t(key,
---args)` and `ctx.i18n` (`getLocale()`, `setLocale(code)`, `useLocale(code)`).
---@param opts { directory?: string, defaultLocale?: string, useSession?: boolean, localeNegotiator?: fun(ctx: tghost.Context): string?, locales?: table<string, table> }
---@return tghost.I18n
function tghost.i18n(opts) end

---@class tghost.I18n
---@field locales string[] The locales found, sorted ("en", "pt-br", ...).
local I18n = {}
---The message `key` in `locale` (the default locale's when it has none).
---@param locale string
---@param key string
---@param args? table<string, any>
---@return string
function I18n:t(locale, key, args) end
---The same as `t`.
---@param locale string
---@param key string
---@param args? table<string, any>
---@return string
function I18n:translate(locale, key, args) end
---The locale there is for a language code ("pt-BR" -> "pt-br" or "pt"), or nil.
---@param code string
---@return string?
function I18n:match(code) end
---@return tghost.Middleware
function I18n:middleware() end

---What `ctx.i18n` offers in a handler.
---@class tghost.I18nContext
---@field locales string[]
local I18nContext = {}
---This update's locale.
---@return string
function I18nContext:getLocale() end
---The user's locale from now on (kept in the session with `useSession`).
---@param code string
function I18nContext:setLocale(code) end
---The locale for the rest of this update only.
---@param code string
function I18nContext:useLocale(code) end
---@param key string
---@param args? table
---@return string
function I18nContext:t(key, args) end

---Middleware that lets each key (by default the user) through `limit`
---times per window of `window` seconds and drops the rest; `reply` answers
---the first dropped update of a window, `onLimitExceeded(ctx)` is called
---for each. The counts live in `storage` (memory by default; a Redis store
---shares them between processes, atomically).
---@param opts { limit?: integer, window?: number, key?: fun(ctx: tghost.Context): (string|integer|nil), storage?: tghost.Storage, reply?: string|fun(ctx: tghost.Context), onLimitExceeded?: fun(ctx: tghost.Context), prefix?: string }
---@return tghost.Middleware
function tghost.ratelimit(opts) end

---Updates the script pushes, for `run(bot, { feed = true })` (a queue
---another program fills, a test): `push` suspends until the runner has
---accepted the update (the sink's backpressure) and returns true, or false
---and why it was not taken (the bot stopping).
---@class tghost.feed
local feed = {}
---@param update table An update; update_id is given if it has none.
---@return boolean ok
---@return string? why_not
function feed.push(update) end
---Updates pushed and not yet delivered to the runner.
---@return integer
function feed.queued() end

---The bot's commands: `tghost.commands{ suggest = true }` answers an
---unknown command "Did you mean /start?" (or calls `suggest(ctx, nearest)`);
---`sync = false` stops tghost from sending the command list.
---@class tghost.commands
---@overload fun(opts: { suggest?: boolean|fun(ctx: tghost.Context, nearest: string?), sync?: boolean })
local commands = {}
---Every command `bot.command` registered, in order.
---@return { name: string, description: string?, descriptions: table<string, string>?, scopes: table[]? }[]
function commands.list() end
---The lists setMyCommands would get: one per scope and language.
---@return { key: string, scope: table, language_code: string?, commands: { command: string, description: string }[] }[]
function commands.plan() end
---Sends the lists that changed since the last send (and deletes the ones
---gone); tghost calls it after `run()` by itself. Returns the calls made.
---@return integer
function commands.sync() end
---The registered command nearest to a typo, or nil.
---@param name string
---@return string?
function commands.nearest(name) end

---A Lua pattern for hears, callbackQuery, inlineQuery, ... (which match a
---plain string exactly); it may match anywhere in the text, like a grammY RegExp.
---@param p string
---@return tghost.Pattern
function tghost.pattern(p) end

---The predicate of a filter query, for bot.filter and bot.drop.
---@param query tghost.FilterQuery
---@return tghost.Predicate
function tghost.matchFilter(query) end

---The generation (load of the script) this code belongs to.
---@return integer
function tghost.generation() end

---The same as the global `sequentialize`.
---@param keyfn fun(ctx: tghost.Context): (string|integer|(string|integer)[]|nil)
---@return tghost.Middleware
function tghost.sequentialize(keyfn) end

---The same as the global `session`.
---@param opts? tghost.SessionOptions
---@return tghost.Middleware
function tghost.session(opts) end

---The same as the global `conversation`.
---@param opts tghost.ConversationOptions
function tghost.conversation(opts) end

---The same as the global `run`.
---@param b tghost.Bot
---@param opts? tghost.RunOptions
---@return tghost.RunHandle
function tghost.run(b, opts) end

---A file to upload: a path on disk (streamed while it is sent), or a table
---`{ path = ... }` or `{ data = ..., filename = ... }` (content_type optional).
---@param source string|{ path?: string, data?: string, filename?: string, content_type?: string }
---@param filename? string The name Telegram shows (a path's own name by default).
---@return tghost.InputFile
function tghost.InputFile(source, filename) end

---Streams a Telegram file to dest (through dest.part): a File, a file_path, or anything with a file_id.
---@param file table|string
---@param dest string
---@return string? path
---@return integer|string size_or_error
function tghost.download(file, dest) end

---Runs fn(...) as a child task of the current update; at the script's top
---level, as a background task (cancelled by a reload or when the bot stops).
---@param fn fun(...): ...
---@param ... any
---@return tghost.Task
function tghost.spawn(fn, ...) end

---Calls fn() every `seconds` seconds in a background task (top level only);
---an error in one call is logged and the next comes as planned.
---@param seconds number
---@param fn fun()
---@return tghost.Task
function tghost.every(seconds, fn) end

---The bot token (tghost removes BOT_TOKEN from its environment).
---@return string?
function tghost.token() end

---The results of one task, or the first result of each of several.
---@param ... tghost.Task|tghost.Waitable
---@return any ...
function tghost.wait(...) end

---Runs the functions (or waits for the tasks) of list at once; their first results.
---@param list (fun(): any|tghost.Task)[]
---@return any[]
function tghost.all(list) end
