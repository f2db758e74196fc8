-- The ctx shortcuts of grammY's Context, as data: one line each,
--
--   S("name", "method", "target"[, "arg", "arg?", ...])
--
-- ctx:name(args..., other) calls bot.api.method with what the target fills
-- in from the update (T lines: the parameters it sets), then the
-- positional arguments, then the fields of other (a table of further
-- parameters, which win). Without an explicit list the positional
-- arguments are the method's required parameters the target leaves, in
-- the Bot API's order (net/botapi_methods.c), as grammY's are: ctx:banChatMember(user_id,
-- other), ctx:replyWithInvoice(title, description, payload, currency,
-- prices, other). "arg?" is optional. A filled parameter the method does
-- not have is left out.
--
-- tools/botapi/gen.mjs reads the T and S lines (they must stay one per
-- line, at the start of it) to annotate every shortcut in types/botapi.lua
-- (but those marked "annotated in types/tghost.lua").
-- context.lua holds what is not one line here (ctx:react, ctx:getFile, the
-- getters and filters).
local errors = require("tghost.errors")
errors.internal()

local M = { targets = {}, list = {} }

local function T(name, ...) M.targets[name] = { ... } end
local function S(name, method, target, ...)
  local entry = { name = name, method = method, target = target }
  if select("#", ...) > 0 then entry.args = { ... } end
  M.list[#M.list + 1] = entry
end

-- Targets: what each fills in.
T("chat", "chat_id", "business_connection_id", "message_thread_id")
T("chat_only", "chat_id")
T("message", "chat_id", "message_id", "business_connection_id")
T("edit", "chat_id", "message_id", "inline_message_id", "business_connection_id")
T("source", "from_chat_id", "message_id")
T("sources", "from_chat_id")
T("author", "chat_id", "user_id")
T("user", "user_id")
T("callback", "callback_query_id")
T("inline", "inline_query_id")
T("shipping", "shipping_query_id")
T("pre_checkout", "pre_checkout_query_id")
T("join_request", "chat_id", "user_id")
T("join_query", "chat_join_request_query_id")
T("topic", "chat_id", "message_thread_id")
T("business", "business_connection_id")
T("business_message", "business_connection_id", "chat_id", "message_id")
T("payment", "user_id", "telegram_payment_charge_id")
T("managed_bot", "user_id")
T("ephemeral", "chat_id", "receiver_user_id", "ephemeral_message_id")
T("guest", "guest_query_id")
T("draft", "chat_id", "draft_id", "message_thread_id")
T("none")

-- Sending to this chat.
S("reply", "sendMessage", "chat")
S("replyWithRichMessage", "sendRichMessage", "chat")
S("replyWithPhoto", "sendPhoto", "chat")
S("replyWithLivePhoto", "sendLivePhoto", "chat")
S("replyWithAudio", "sendAudio", "chat")
S("replyWithDocument", "sendDocument", "chat")
S("replyWithVideo", "sendVideo", "chat")
S("replyWithAnimation", "sendAnimation", "chat")
S("replyWithVoice", "sendVoice", "chat")
S("replyWithVideoNote", "sendVideoNote", "chat")
S("replyWithSticker", "sendSticker", "chat")
S("replyWithPaidMedia", "sendPaidMedia", "chat")
S("sendPaidMedia", "sendPaidMedia", "chat")
S("replyWithMediaGroup", "sendMediaGroup", "chat")
S("replyWithLocation", "sendLocation", "chat")
S("replyWithVenue", "sendVenue", "chat")
S("replyWithContact", "sendContact", "chat")
S("replyWithPoll", "sendPoll", "chat")
S("replyWithChecklist", "sendChecklist", "chat")
S("replyWithDice", "sendDice", "chat", "emoji?")
S("replyWithChatAction", "sendChatAction", "chat")
S("sendChatAction", "sendChatAction", "chat")
S("replyWithInvoice", "sendInvoice", "chat")
S("replyWithGame", "sendGame", "chat")
S("replyWithGiftToChannel", "sendGift", "chat_only", "gift_id")
S("replyWithGift", "sendGift", "user", "gift_id")
S("replyWithDraft", "sendMessageDraft", "draft", "text")
S("replyWithRichMessageDraft", "sendRichMessageDraft", "draft")

-- This update's message elsewhere.
S("forwardMessage", "forwardMessage", "source")
S("copyMessage", "copyMessage", "source")
S("forwardMessages", "forwardMessages", "sources")
S("copyMessages", "copyMessages", "sources")

-- This update's message.
S("deleteMessage", "deleteMessage", "message")
S("pinChatMessage", "pinChatMessage", "message")
S("stopPoll", "stopPoll", "message")
S("editMessageChecklist", "editMessageChecklist", "business_message")
S("approveSuggestedPost", "approveSuggestedPost", "message")
S("declineSuggestedPost", "declineSuggestedPost", "message")
S("deleteMessageReaction", "deleteMessageReaction", "message")
S("deleteMessageReactionUser", "deleteMessageReaction", "message", "user_id")
S("deleteMessageReactionChat", "deleteMessageReaction", "message", "actor_chat_id")
S("editMessageText", "editMessageText", "edit", "text")
S("editMessageCaption", "editMessageCaption", "edit")
S("editMessageMedia", "editMessageMedia", "edit")
S("editMessageLiveLocation", "editMessageLiveLocation", "edit")
S("stopMessageLiveLocation", "stopMessageLiveLocation", "edit")
S("editEphemeralMessageText", "editEphemeralMessageText", "ephemeral", "text")
S("editEphemeralMessageCaption", "editEphemeralMessageCaption", "ephemeral", "caption?")
S("editEphemeralMessageMedia", "editEphemeralMessageMedia", "ephemeral")
S("editEphemeralMessageReplyMarkup", "editEphemeralMessageReplyMarkup", "ephemeral")
S("deleteEphemeralMessage", "deleteEphemeralMessage", "ephemeral")

-- The chat.
S("getChat", "getChat", "chat_only")
S("leaveChat", "leaveChat", "chat_only")
S("getChatAdministrators", "getChatAdministrators", "chat_only")
S("getChatMemberCount", "getChatMemberCount", "chat_only")
S("getChatMembersCount", "getChatMemberCount", "chat_only")
S("getChatMember", "getChatMember", "chat_only")
S("getAuthor", "getChatMember", "author")
S("getChatGifts", "getChatGifts", "chat_only")
S("deleteMessages", "deleteMessages", "chat_only")
S("unpinChatMessage", "unpinChatMessage", "chat", "message_id?")
S("unpinAllChatMessages", "unpinAllChatMessages", "chat_only")
S("banChatMember", "banChatMember", "chat_only")
S("kickChatMember", "banChatMember", "chat_only")
S("banAuthor", "banChatMember", "author")
S("kickAuthor", "banChatMember", "author")
S("unbanChatMember", "unbanChatMember", "chat_only")
S("restrictChatMember", "restrictChatMember", "chat_only")
S("restrictAuthor", "restrictChatMember", "author")
S("promoteChatMember", "promoteChatMember", "chat_only")
S("promoteAuthor", "promoteChatMember", "author")
S("setChatAdministratorCustomTitle", "setChatAdministratorCustomTitle", "chat_only")
S("setChatAdministratorAuthorCustomTitle", "setChatAdministratorCustomTitle", "author")
S("setChatMemberTag", "setChatMemberTag", "chat_only", "user_id", "tag?")
S("setAuthorTag", "setChatMemberTag", "author", "tag?")
S("banChatSenderChat", "banChatSenderChat", "chat_only")
S("unbanChatSenderChat", "unbanChatSenderChat", "chat_only")
S("setChatPermissions", "setChatPermissions", "chat_only")
S("exportChatInviteLink", "exportChatInviteLink", "chat_only")
S("createChatInviteLink", "createChatInviteLink", "chat_only")
S("editChatInviteLink", "editChatInviteLink", "chat_only")
S("createChatSubscriptionInviteLink", "createChatSubscriptionInviteLink", "chat_only")
S("editChatSubscriptionInviteLink", "editChatSubscriptionInviteLink", "chat_only")
S("revokeChatInviteLink", "revokeChatInviteLink", "chat_only")
S("setChatPhoto", "setChatPhoto", "chat_only")
S("deleteChatPhoto", "deleteChatPhoto", "chat_only")
S("setChatTitle", "setChatTitle", "chat_only")
S("setChatDescription", "setChatDescription", "chat_only", "description?")
S("setChatStickerSet", "setChatStickerSet", "chat_only")
S("deleteChatStickerSet", "deleteChatStickerSet", "chat_only")
S("deleteAllMessageReactions", "deleteAllMessageReactions", "author")
S("deleteAllMessageReactionsUser", "deleteAllMessageReactions", "chat_only", "user_id")
S("deleteAllMessageReactionsChat", "deleteAllMessageReactions", "chat_only", "actor_chat_id")
S("verifyChat", "verifyChat", "chat_only")
S("removeChatVerification", "removeChatVerification", "chat_only")
S("createForumTopic", "createForumTopic", "chat_only")
S("editForumTopic", "editForumTopic", "topic")
S("closeForumTopic", "closeForumTopic", "topic")
S("reopenForumTopic", "reopenForumTopic", "topic")
S("deleteForumTopic", "deleteForumTopic", "topic")
S("unpinAllForumTopicMessages", "unpinAllForumTopicMessages", "topic")
S("editGeneralForumTopic", "editGeneralForumTopic", "chat_only")
S("closeGeneralForumTopic", "closeGeneralForumTopic", "chat_only")
S("reopenGeneralForumTopic", "reopenGeneralForumTopic", "chat_only")
S("hideGeneralForumTopic", "hideGeneralForumTopic", "chat_only")
S("unhideGeneralForumTopic", "unhideGeneralForumTopic", "chat_only")
S("unpinAllGeneralForumTopicMessages", "unpinAllGeneralForumTopicMessages", "chat_only")
S("setChatMenuButton", "setChatMenuButton", "none")
S("getChatMenuButton", "getChatMenuButton", "none")
S("setMyDefaultAdministratorRights", "setMyDefaultAdministratorRights", "none")
S("getMyDefaultAdministratorRights", "getMyDefaultAdministratorRights", "none")

-- The user the update is from.
S("getUserProfilePhotos", "getUserProfilePhotos", "user")
S("getUserProfileAudios", "getUserProfileAudios", "user")
S("setUserEmojiStatus", "setUserEmojiStatus", "user")
S("getUserChatBoosts", "getUserChatBoosts", "author")
S("getUserGifts", "getUserGifts", "user")
S("getUserPersonalChatMessages", "getUserPersonalChatMessages", "user")
S("verifyUser", "verifyUser", "user")
S("removeUserVerification", "removeUserVerification", "user")
S("giftPremiumSubscription", "giftPremiumSubscription", "user")
S("editUserStarSubscription", "editUserStarSubscription", "user")
S("setPassportDataErrors", "setPassportDataErrors", "user")
S("savePreparedInlineMessage", "savePreparedInlineMessage", "user")
S("savePreparedKeyboardButton", "savePreparedKeyboardButton", "user")
S("refundStarPayment", "refundStarPayment", "payment")
S("getManagedBotToken", "getManagedBotToken", "managed_bot")
S("replaceManagedBotToken", "replaceManagedBotToken", "managed_bot")
S("getManagedBotAccessSettings", "getManagedBotAccessSettings", "managed_bot")
S("setManagedBotAccessSettings", "setManagedBotAccessSettings", "managed_bot")

-- Queries.
S("answerInlineQuery", "answerInlineQuery", "inline")
S("answerShippingQuery", "answerShippingQuery", "shipping")
S("answerPreCheckoutQuery", "answerPreCheckoutQuery", "pre_checkout")  -- annotated in types/tghost.lua
S("approveChatJoinRequest", "approveChatJoinRequest", "join_request")
S("declineChatJoinRequest", "declineChatJoinRequest", "join_request")
S("answerChatJoinRequestQuery", "answerChatJoinRequestQuery", "join_query")
S("replyWithChatJoinRequestWebApp", "sendChatJoinRequestWebApp", "join_query")
S("answerGuestQuery", "answerGuestQuery", "guest")

-- The business account of this update's business connection.
S("getBusinessConnection", "getBusinessConnection", "business")
S("readBusinessMessage", "readBusinessMessage", "business_message")
S("deleteBusinessMessages", "deleteBusinessMessages", "business")
S("setBusinessAccountName", "setBusinessAccountName", "business")
S("setBusinessAccountUsername", "setBusinessAccountUsername", "business", "username?")
S("setBusinessAccountBio", "setBusinessAccountBio", "business", "bio?")
S("setBusinessAccountProfilePhoto", "setBusinessAccountProfilePhoto", "business")
S("removeBusinessAccountProfilePhoto", "removeBusinessAccountProfilePhoto", "business")
S("setBusinessAccountGiftSettings", "setBusinessAccountGiftSettings", "business")
S("getBusinessAccountStarBalance", "getBusinessAccountStarBalance", "business")
S("transferBusinessAccountStars", "transferBusinessAccountStars", "business")
S("getBusinessAccountGifts", "getBusinessAccountGifts", "business")
S("convertGiftToStars", "convertGiftToStars", "business")
S("upgradeGift", "upgradeGift", "business")
S("transferGift", "transferGift", "business")
S("postStory", "postStory", "business")
S("repostStory", "repostStory", "business")
S("editStory", "editStory", "business")
S("deleteStory", "deleteStory", "business")

return M
