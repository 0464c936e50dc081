"""E-mail notifications on state transitions (spec §8), sent off the decision path."""

from he_ha.notify.mail_rules import RuleError, TransitionRule
from he_ha.notify.mailer import MailError, TlsOptions
from he_ha.notify.notifier import Notifier, NotifierStats, NotifyConfigError, NotifySettings
from he_ha.notify.template import DEFAULT_TEMPLATE_PATH, Template, TemplateError, load_template

__all__ = [
    "DEFAULT_TEMPLATE_PATH",
    "MailError",
    "Notifier",
    "NotifierStats",
    "NotifyConfigError",
    "NotifySettings",
    "RuleError",
    "Template",
    "TemplateError",
    "TlsOptions",
    "TransitionRule",
    "load_template",
]
