"""EmailSubmission/set (RFC 8621 §7.5): creating a submission sends the Email by SMTP.

Each create reads the Email's message from IMAP (as a download would), checks it against
the Identity and the login's sender rule (``bridge.mail.identity``), derives or checks the
envelope, drops the Bcc fields and hands the message to the submission server as the
user. A submission is recorded only once the server accepted the message; any refusal is
that create's SetError, and nothing was sent. Updates can only try to cancel, which an
immediate send cannot (cannotUnsend); a destroy forgets the record, not the message.

Then onSuccessUpdateEmail / onSuccessDestroyEmail become one implicit Email/set, whose
response follows under the same call id: typically the sent draft loses $draft and moves
from Drafts to Sent.
"""

from __future__ import annotations

import logging
import time
from typing import Any, BinaryIO

import msgspec

from bridge.imap.errors import UpstreamError
from bridge.imap.responses import ObjectIds
from bridge.jmap import CallContext, MethodResult, decode_args
from bridge.jmap.standard import SetArgs, check_in_state
from bridge.mail.blobs import BlobVanished, blob_id, open_blob
from bridge.mail.common import account_of
from bridge.mail.email_get import utc_date
from bridge.mail.gmail_sent import GmailSentCopies, message_id_of
from bridge.mail.identity import Identity, identities, identity_allows, may_send_as
from bridge.mail.setting import Refused, apply_each, patched
from bridge.mail.spool import open_spool, size_of, write_for_transport
from bridge.mail.submission import (
    Address,
    DeliveryStatus,
    EmailSubmission,
    Envelope,
    state_of,
    submissions,
)
from bridge.mime.envelope import (
    EnvelopeError,
    envelope_recipients,
    envelope_sender,
    field_addresses,
    header_fields,
    is_mailbox,
)
from bridge.mime.headers import Header
from bridge.smtp import Sent, SmtpRefused, SmtpUnavailable, submit
from bridge.store.ids import derive_id, random_token
from bridge.store.journal import EMAIL_SUBMISSION

log = logging.getLogger("bridge.mail")

CREATABLE = frozenset({"identityId", "emailId", "envelope", "undoStatus"})
# More recipients than this in one submission answers tooManyRecipients: a mistake or a
# mass mailing, either way not one message from a person's mail client.
MAX_RECIPIENTS = 500


class SubmissionSetArgs(SetArgs, kw_only=True):
    onSuccessUpdateEmail: dict[str, dict[str, Any]] | None = None
    onSuccessDestroyEmail: list[str] | None = None


class SubmissionSetter:
    def __init__(self, ctx: CallContext, request: SubmissionSetArgs) -> None:
        self.ctx = ctx
        self.request = request
        self.account = account_of(ctx)
        self.cache = self.account.cache
        named = [*(request.update or {}), *(request.destroy or [])]
        self.known = submissions(self.account, named)
        # Submission id -> its Email, for each create, update or destroy that succeeded.
        self.succeeded: dict[str, str] = {}
        self.created_here: dict[str, str] = {}
        self.identities: dict[str, Identity] = {}
        # Gmail's SMTP files its own sent copy (bridge.mail.gmail_sent).
        self.gmail: GmailSentCopies | None = None

    def run(self) -> dict[str, Any] | MethodResult:
        if self.request.create:
            self.account.sync(writing=True)
            self.identities = identities(self.account)
            if self.account.imap.object_ids is ObjectIds.GMAIL:
                self.gmail = GmailSentCopies(self.ctx, self.account)
        old_state = state_of(self.account)
        check_in_state(self.request.ifInState, old_state)
        results = apply_each(self.request, self._create, self._update, self._destroy)
        response = {
            "accountId": self.ctx.account_id,
            "oldState": old_state,
            "newState": state_of(self.account),
            **results,
        }
        implicit = self._implicit_email_set()
        extra = self.ctx.invoke("Email/set", implicit) if implicit is not None else []
        if self.gmail is not None:
            extra += self.gmail.drop_duplicates()
        return MethodResult(response, extra) if extra else response

    # -- create: send -------------------------------------------------------------------

    def _create(self, creation_id: str, obj: Any) -> dict[str, Any]:
        unknown = sorted(set(obj) - CREATABLE)
        if unknown:
            raise Refused("invalidProperties", "unknown or server-set properties", unknown)
        if obj.get("undoStatus", "final") != "final":
            raise Refused("invalidProperties", "sending is immediate: undoStatus is final",
                          ["undoStatus"])  # fmt: skip
        identity = self.identities.get(self._reference(obj.get("identityId"), "identityId"))
        if identity is None:
            raise Refused("invalidProperties", "no such Identity", ["identityId"])
        email_id = self._reference(obj.get("emailId"), "emailId")
        record = self.cache.emails([email_id]).get(email_id)
        if record is None:
            raise Refused("invalidProperties", "no such Email", ["emailId"])
        with open_spool(self.account) as spool:
            header = self._message(email_id, spool)
            headers = header_fields(header)
            self._check_from(headers)
            envelope = self._envelope(obj.get("envelope"), headers, identity)
            message_id = message_id_of(headers)
            in_sent = self.gmail.in_sent(message_id) if self.gmail is not None else set()
            sent = self._send(envelope, spool)
        submission = EmailSubmission(
            id=derive_id("s", random_token(16)),
            identityId=identity.id,
            emailId=email_id,
            threadId=record.thread_id,
            envelope=envelope,
            sendAt=utc_date(int(time.time())),
            deliveryStatus={
                # Relayed to the submission server, which reports nothing further.
                address: DeliveryStatus(smtpReply=str(reply), delivered="unknown")
                for address, reply in sent.recipients.items()
            },
        )
        self.cache.put_object(EMAIL_SUBMISSION, submission.id, msgspec.json.encode(submission))
        self.ctx.created_ids[creation_id] = self.created_here[creation_id] = submission.id
        self.succeeded[submission.id] = email_id
        if self.gmail is not None:
            self._note_gmail_copy(email_id, message_id, in_sent)
        # What the server set or chose: everything the client did not say as it is now.
        whole = msgspec.to_builtins(submission)
        return {key: value for key, value in whole.items() if obj.get(key) != value}

    def _note_gmail_copy(self, email_id: str, message_id: str | None, before: set[str]) -> None:
        """Sent and recorded: a failure to look for Gmail's copy now only leaves it be."""
        assert self.gmail is not None
        try:
            self.gmail.note_sent(email_id, message_id, before)
        except UpstreamError as exc:
            log.warning("could not look for Gmail's sent copy for %s: %s",
                        self.account.user.username, exc)  # fmt: skip

    def _reference(self, value: Any, prop: str) -> str:
        """An id, or a ``#creationId`` of something made earlier in the request."""
        if not isinstance(value, str):
            raise Refused("invalidProperties", f"{prop} must be an id", [prop])
        return self.ctx.resolve_creation_id(value) or value

    def _message(self, email_id: str, spool: BinaryIO) -> bytes:
        """Copy the Email, as SMTP carries it, into ``spool``; its header block."""
        try:
            chunks = open_blob(self.account, blob_id(email_id))
            if chunks is None:
                raise Refused("invalidProperties", "no such Email", ["emailId"])
            return write_for_transport(chunks, spool)
        except BlobVanished as exc:
            raise Refused("invalidProperties", "no such Email", ["emailId"]) from exc
        except UpstreamError as exc:
            # Only this create fails: others in the call may have been sent already.
            raise Refused("serverFail", "the Email could not be read from the upstream") from exc

    def _check_from(self, headers: list[Header]) -> None:
        senders = field_addresses(headers, "from")
        if not senders or not all(is_mailbox(address) for address in senders):
            raise Refused("invalidEmail", "the Email needs a From address", ["from"])
        refused = [address for address in senders if not may_send_as(self.account, address)]
        if refused:
            raise Refused("forbiddenFrom", f"this login may not send as {', '.join(refused)}")

    def _envelope(self, given: Any, headers: list[Header], identity: Identity) -> Envelope:
        if given is None:
            envelope = _derived_envelope(headers, identity)
        else:
            try:
                envelope = msgspec.convert(given, Envelope)
            except msgspec.ValidationError as exc:
                raise Refused("invalidProperties", f"envelope: {exc}", ["envelope"]) from exc
            if any(a.parameters for a in (envelope.mailFrom, *envelope.rcptTo)):
                raise Refused("invalidProperties", "this server offers no SMTP extensions "
                              "(submissionExtensions is empty)", ["envelope"])  # fmt: skip
            envelope.rcptTo = _distinct(envelope.rcptTo)
        mail_from = envelope.mailFrom.email
        if mail_from.startswith("*@") or not may_send_as(self.account, mail_from):
            raise Refused("forbiddenMailFrom", f"this login may not send as {mail_from!r}")
        if not envelope.rcptTo:
            raise Refused("noRecipients", "the envelope has no recipients")
        if len(envelope.rcptTo) > MAX_RECIPIENTS:
            raise Refused("tooManyRecipients", f"at most {MAX_RECIPIENTS} recipients",
                          maxRecipients=MAX_RECIPIENTS)  # fmt: skip
        invalid = [a.email for a in envelope.rcptTo if not is_mailbox(a.email)]
        if invalid:
            raise Refused("invalidRecipients", "not addresses", invalidRecipients=invalid)
        return envelope

    def _send(self, envelope: Envelope, message: BinaryIO) -> Sent:
        endpoint = self.account.settings.smtp_endpoint
        if endpoint is None:
            raise Refused("forbiddenToSend", "this server has no submission service configured")
        recipients = [address.email for address in envelope.rcptTo]
        try:
            return submit(
                endpoint, self.account.login, envelope.mailFrom.email, recipients, message,
                chunk_size=self.account.settings.blob_chunk_size,
            )  # fmt: skip
        except SmtpRefused as exc:
            raise _refusal(exc, size_of(message)) from exc
        except SmtpUnavailable as exc:
            log.warning("submission for %s failed: %s", self.account.user.username, exc)
            if exc.maybe_sent:
                raise Refused(
                    "serverFail",
                    "the submission server went away before it "
                    "confirmed the message: it may or may not have been sent",
                ) from exc
            raise Refused("serverFail", "the submission server is unavailable; "
                          "nothing was sent") from exc  # fmt: skip

    # -- update and destroy: records only -----------------------------------------------

    def _update(self, submission_id: str, patch: Any) -> None:
        submission = self.known.get(submission_id)
        if submission is None:
            raise Refused("notFound", "no such EmailSubmission")
        current = msgspec.to_builtins(submission)
        wanted = patched(current, patch)
        changed = sorted(key for key in {*current, *wanted} if current.get(key) != wanted.get(key))
        if changed == ["undoStatus"] and wanted["undoStatus"] == "canceled":
            raise Refused("cannotUnsend", "the message was sent at once: it cannot be recalled")
        if changed:
            raise Refused("invalidProperties", "only undoStatus can change", changed)
        self.succeeded[submission_id] = submission.emailId

    def _destroy(self, submission_id: str) -> None:
        submission = self.known.get(submission_id)
        if submission is None or not self.cache.remove_object(EMAIL_SUBMISSION, submission_id):
            raise Refused("notFound", "no such EmailSubmission")
        del self.known[submission_id]
        self.succeeded[submission_id] = submission.emailId

    # -- the implicit Email/set ---------------------------------------------------------

    def _implicit_email_set(self) -> dict[str, Any] | None:
        """RFC 8621 §7.5's Email/set for the submissions that succeeded, or None."""

        def email_of(key: str) -> str | None:
            submission_id = self.created_here.get(key[1:]) if key.startswith("#") else key
            return self.succeeded.get(submission_id or "")

        update = {
            email_id: patch
            for key, patch in (self.request.onSuccessUpdateEmail or {}).items()
            if (email_id := email_of(key)) is not None
        }
        destroy = list(dict.fromkeys(
            email_id for key in self.request.onSuccessDestroyEmail or []
            if (email_id := email_of(key)) is not None
        ))  # fmt: skip
        if not update and not destroy:
            return None
        args: dict[str, Any] = {"accountId": self.ctx.account_id}
        if update:
            args["update"] = update
        if destroy:
            args["destroy"] = destroy
        return args


def _distinct(addresses: list[Address]) -> list[Address]:
    seen: dict[str, Address] = {}
    for address in addresses:
        seen.setdefault(address.email.casefold(), address)
    return list(seen.values())


def _derived_envelope(headers: list[Header], identity: Identity) -> Envelope:
    """RFC 8621 §7.5: Sender or else From, unless the Identity does not cover that
    address (then the Identity's own); To, Cc and Bcc."""
    try:
        sender = envelope_sender(headers)
    except EnvelopeError as exc:
        raise Refused("invalidEmail", str(exc), exc.properties) from exc
    if not identity_allows(identity, sender):
        sender = identity.email
    recipients = [Address(email=address) for address in envelope_recipients(headers)]
    return Envelope(mailFrom=Address(email=sender), rcptTo=recipients)


def _refusal(exc: SmtpRefused, size: int) -> Refused:
    """The SetError for what the submission server refused (RFC 8621 §7.5's types)."""
    reply = exc.reply
    said = f": {reply}" if reply is not None else ""
    if exc.stage == "rcpt":
        permanent = [address for address, r in exc.refused.items() if r.permanent]
        replies = "; ".join(f"{a}: {r}" for a, r in exc.refused.items())
        if permanent:
            return Refused("invalidRecipients", f"recipients refused: {replies}",
                           invalidRecipients=permanent)  # fmt: skip
        return Refused("serverFail", f"recipients refused for now, try again: {replies}")
    if exc.stage == "auth":
        return Refused("forbiddenToSend", f"the submission server refused the login{said}")
    if reply is not None and not reply.permanent:
        return Refused("serverFail", f"the submission server refused for now{said}")
    if reply is None or reply.code == 552 or reply.text.startswith("5.3.4"):
        # Without an advertised SIZE, all that is known is that this size is too much.
        limit = exc.size_limit or max(size - 1, 0)
        return Refused("tooLarge", f"the message is too large{said}", maxSize=limit)
    if exc.stage == "mail":
        return Refused("forbiddenMailFrom", f"the submission server refused the sender{said}")
    return Refused("forbiddenToSend", f"the submission server refused the message{said}")


def submission_set(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any] | MethodResult:
    request = decode_args(SubmissionSetArgs, args)
    ctx.check_max_objects(request.object_count(), "maxObjectsInSet")
    return SubmissionSetter(ctx, request).run()
