"""The Data page: the examples table, the conversation editor, import, checks
and the chat-template preview."""
