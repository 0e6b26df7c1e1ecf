"""E-mail to subscribers through the SMTP server of the settings."""

import logging
import smtplib
from email.message import EmailMessage

from flask import current_app

from .clock import utcnow
from .messages import shown
from .models import Notice

log = logging.getLogger(__name__)

# The subject's topic by notice kind; autopay's notices are all the rest.
SUBJECTS = {"refund": "возврат платежа"}


def send_notice(notice_id):
    """Send a notice by e-mail once; True if sent now."""
    notice = Notice.get_or_none(Notice.id == notice_id)
    if notice is None or notice.emailed_at or not notice.contract.email:
        return False
    config = current_app.config
    message = EmailMessage()
    message["From"] = config["MAIL_FROM"]
    message["To"] = notice.contract.email
    topic = SUBJECTS.get(notice.kind, "автоплатёж")
    message["Subject"] = f"Договор {notice.contract.number}: {topic}"
    message.set_content(shown(notice.text))
    with smtplib.SMTP(config["SMTP_HOST"], config["SMTP_PORT"], timeout=30) as smtp:
        if config["SMTP_STARTTLS"]:
            smtp.starttls()
        if config["SMTP_USER"]:
            smtp.login(config["SMTP_USER"], config["SMTP_PASSWORD"])
        smtp.send_message(message)
    Notice.update(emailed_at=utcnow()).where(Notice.id == notice.id).execute()
    log.info("notice %s e-mailed to contract %s", notice.kind, notice.contract.number)
    return True
