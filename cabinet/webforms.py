"""The base of the cabinet's forms: a field with errors says so to screen readers."""

from flask_wtf import FlaskForm


def error_ids(field):
    """The ids of a field's error paragraphs (the templates give them these ids)."""
    return " ".join(f"{field.id}-error-{n}" for n in range(1, len(field.errors) + 1))


class Form(FlaskForm):
    """A Flask-WTF form whose invalid fields carry aria-invalid and aria-describedby."""

    class Meta(FlaskForm.Meta):
        def render_field(self, field, render_kw):
            if field.errors:
                render_kw = {
                    "aria_invalid": "true",
                    "aria_describedby": error_ids(field),
                    **render_kw,
                }
            return super().render_field(field, render_kw)
