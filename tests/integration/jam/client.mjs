// A Bearer-only JMAP client (jmap-jam) against bridge: the session, Mailbox/get and
// Email/query. Prints what it saw as one JSON object; exits non-zero on any error.
// Usage: node client.mjs SESSION_URL TOKEN
import JamClient from "jmap-jam";

const [sessionUrl, bearerToken] = process.argv.slice(2);
const jam = new JamClient({ sessionUrl, bearerToken });
const session = await jam.session;
const accountId = await jam.getPrimaryAccount();
const [mailboxes] = await jam.api.Mailbox.get({ accountId, ids: null });
const inbox = mailboxes.list.find((mailbox) => mailbox.role === "inbox");
const [query] = await jam.api.Email.query({ accountId, filter: { inMailbox: inbox.id } });
console.log(JSON.stringify({
  username: session.username,
  mailboxes: mailboxes.list.map((mailbox) => mailbox.name).sort(),
  inboxTotal: query.ids.length,
}));
