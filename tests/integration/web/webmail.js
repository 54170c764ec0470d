// A JMAP client in the browser: logs in for a token (POST /jmap/token with Basic credentials),
// then works with Bearer; lists the INBOX, opens a message, sends one, and listens on
// eventSourceUrl, where a browser's EventSource cannot send an Authorization header: the
// token rides in ?access_token= (a cookie would not: bridge's is SameSite=Strict, and this
// page is another site).
"use strict";

const USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail",
               "urn:ietf:params:jmap:submission"];
const bridgeUrl = new URLSearchParams(location.search).get("bridge");
const $ = (id) => document.getElementById(id);
let token = null;
let session = null;
let accountId = null;
let mailboxes = {};   // role or name -> id
let events = null;    // the EventSource while logged in

function fail(error) {
  $("error").textContent = String(error);
  throw error;
}

async function login(username, password) {
  const answer = await fetch(bridgeUrl + "/jmap/token", {
    method: "POST",
    headers: {Authorization: "Basic " + btoa(username + ":" + password)},
  });
  if (!answer.ok) throw new Error("login refused: " + answer.status);
  token = (await answer.json()).token;
  const sessionAnswer = await fetch(bridgeUrl + "/jmap/session", {headers: authorization()});
  session = await sessionAnswer.json();
  accountId = session.primaryAccounts["urn:ietf:params:jmap:mail"];
  $("who").textContent = session.username;
}

function authorization() {
  return {Authorization: "Bearer " + token};
}

// One API request; the responses by call id, an error response thrown.
async function api(calls) {
  const answer = await fetch(session.apiUrl, {
    method: "POST",
    headers: {...authorization(), "Content-Type": "application/json"},
    body: JSON.stringify({using: USING, methodCalls: calls}),
  });
  if (!answer.ok) throw new Error("API answered " + answer.status);
  const results = {};
  for (const [name, args, id] of (await answer.json()).methodResponses) {
    if (name === "error") throw new Error(id + ": " + args.type);
    results[id] = args;
  }
  return results;
}

async function loadMailboxes() {
  const {boxes} = await api([["Mailbox/get", {accountId, properties: ["name", "role"]}, "boxes"]]);
  mailboxes = {};
  for (const box of boxes.list) mailboxes[box.role || box.name] = box.id;
}

// Pushes may overlap: a list answered late must not replace a newer one.
let inboxAsked = 0;

async function showInbox() {
  const asked = ++inboxAsked;
  const {list} = await api([
    ["Email/query", {accountId, filter: {inMailbox: mailboxes.inbox},
                     sort: [{property: "receivedAt", isAscending: false}], limit: 20}, "q"],
    ["Email/get", {accountId, "#ids": {resultOf: "q", name: "Email/query", path: "/ids"},
                   properties: ["subject", "from", "receivedAt", "keywords"]}, "list"],
  ]);
  if (asked !== inboxAsked) return;
  $("inbox").replaceChildren(...list.list.map((email) => {
    const item = document.createElement("li");
    item.dataset.id = email.id;
    item.textContent = email.subject;
    item.addEventListener("click", () => openMessage(email.id).catch(fail));
    return item;
  }));
}

async function openMessage(id) {
  const {message} = await api([["Email/get", {accountId, ids: [id],
    properties: ["subject", "from", "textBody", "bodyValues"], fetchTextBodyValues: true},
    "message"]]);
  const [email] = message.list;
  $("subject").textContent = email.subject;
  $("from").textContent = email.from.map((a) => a.email).join(", ");
  $("body").textContent = email.textBody.map((part) => email.bodyValues[part.partId].value)
                                        .join("\n");
}

async function send(to, subject, text) {
  const {identities} = await api([["Identity/get", {accountId}, "identities"]]);
  const identity = identities.list[0];
  const draft = {
    mailboxIds: {[mailboxes.drafts]: true}, keywords: {$draft: true, $seen: true},
    from: [{name: identity.name, email: identity.email}], to: [{email: to}], subject,
    bodyValues: {text: {value: text}}, textBody: [{partId: "text", type: "text/plain"}],
  };
  // Once sent, the draft moves to Sent and stops being a draft (RFC 8621 §7.5).
  const results = await api([
    ["Email/set", {accountId, create: {draft}}, "create"],
    ["EmailSubmission/set", {accountId,
      create: {send: {emailId: "#draft", identityId: identity.id}},
      onSuccessUpdateEmail: {"#send": {
        [`mailboxIds/${mailboxes.drafts}`]: null, [`mailboxIds/${mailboxes.sent}`]: true,
        "keywords/$draft": null}}}, "submit"],
  ]);
  const refused = results.create.notCreated || results.submit.notCreated;
  if (refused && Object.keys(refused).length) throw new Error(JSON.stringify(refused));
  $("sent").textContent = "Sent: " + subject;
}

function listen() {
  const url = session.eventSourceUrl.replace("{types}", "*").replace("{closeafter}", "no")
    .replace("{ping}", "0") + "&access_token=" + encodeURIComponent(token);
  events = new EventSource(url);
  events.addEventListener("open", () => { $("push").textContent = "open"; });
  events.addEventListener("error", () => { $("push").textContent = "error"; });
  // Another client changed something: refresh what is shown.
  events.addEventListener("state", () => {
    $("pushes").textContent = String(Number($("pushes").textContent) + 1);
    showInbox().catch(fail);
  });
}

// The token stops working at bridge (DELETE /jmap/token), and the push stream with it.
async function logout() {
  events.close();
  const answer = await fetch(bridgeUrl + "/jmap/token", {method: "DELETE",
                                                          headers: authorization()});
  if (answer.status !== 204) throw new Error("logout answered " + answer.status);
  token = null;
  $("mail").hidden = true;
  $("login").hidden = false;
  $("status").textContent = "Logged out";
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  (async () => {
    await login($("username").value, $("password").value);
    await loadMailboxes();
    await showInbox();
    $("login").hidden = true;
    $("mail").hidden = false;
    listen();
  })().catch(fail);
});

$("compose").addEventListener("submit", (event) => {
  event.preventDefault();
  send($("to").value, $("compose-subject").value, $("compose-body").value).catch(fail);
});

$("logout").addEventListener("click", () => logout().catch(fail));
