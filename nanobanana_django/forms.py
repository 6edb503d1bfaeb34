"""The form of the admin's "Generate header image" page."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from .conf import app_settings
from .specs import MAX_PROMPT_LENGTH, ModelSpec

#: Model inputs an editor may choose in the admin, in the order they are shown.
INPUT_FIELDS = ("resolution", "aspect_ratio", "output_format")

CHOICE_LABELS = {
    "match_input_image": _("Match the input image"),
    "jpg": _("JPEG"),
    "png": _("PNG"),
}


class GenerateHeaderImageForm(forms.Form):
    """Inputs for a batch of generations; only those the configured model takes are shown.

    Only the inputs and the prompt an editor changes are sent: the others come from the
    picked preset, so picking one is enough.
    """

    preset = forms.ChoiceField(
        label=_("Preset"),
        required=False,
        help_text=_(
            "A bundle of size, shape and prompt guidance. The inputs below start at the "
            "model's default; the ones you change win over the preset picked here."
        ),
    )
    resolution = forms.ChoiceField(
        label=_("Resolution"),
        help_text=_("Larger images take longer and cost more."),
    )
    aspect_ratio = forms.ChoiceField(label=_("Aspect ratio"))
    output_format = forms.ChoiceField(label=_("Output format"))
    prompt = forms.CharField(
        label=_("Prompt"),
        required=False,
        max_length=MAX_PROMPT_LENGTH,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 5, "cols": 80, "class": "vLargeTextField"}),
    )
    replace = forms.BooleanField(
        label=_("Replace existing images"),
        required=False,
        help_text=_("Without this, objects that already have an image are skipped."),
    )

    def __init__(
        self,
        *args: Any,
        spec: ModelSpec,
        defaults: Mapping[str, Any],
        several: bool,
        presets: Sequence[tuple[str, str]] = (),
        default_preset: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        none = [] if default_preset else [("", _("None"))]
        self.fields["preset"].choices = [*none, *presets]
        self.fields["preset"].initial = default_preset or ""
        for name in INPUT_FIELDS:
            allowed = spec.choices.get(name)
            if not allowed:
                del self.fields[name]
                continue
            field = self.fields[name]
            field.choices = [(value, CHOICE_LABELS.get(value, value)) for value in allowed]
            field.initial = defaults.get(name, spec.defaults.get(name))
        if several:
            self.fields["prompt"].help_text = _(
                "Leave empty to give each object its own prompt (shown above). "
                "Text here replaces the prompt of every selected object."
            )
        else:
            self.fields["prompt"].help_text = _(
                "The prompt built from the title and topic. Edit it to ask for something "
                "else, or empty it to use the built one."
            )

        self.fields["candidates"] = forms.IntegerField(
            label=_("Candidates"),
            required=False,
            min_value=1,
            max_value=app_settings.MAX_VARIANTS,
            initial=1,
            help_text=_(
                "How many images to make for each object, to pick one from. Each is a "
                "prediction of its own, billed on its own; the price is shown before they "
                "are made."
            ),
        )

    def candidate_count(self) -> int:
        """How many candidates the editor asked for (1: a plain generation)."""
        return (getattr(self, "cleaned_data", None) or {}).get("candidates") or 1

    def model_input(self) -> dict[str, Any]:
        """The model inputs the editor changed, for ``queue_generation(input=...)``."""
        changed = self.changed_data
        return {
            name: self.cleaned_data[name]
            for name in INPUT_FIELDS
            if name in self.fields and name in changed
        }

    def prompt_override(self) -> str | None:
        """The prompt, when the editor wrote or edited one (else it is built per object)."""
        if "prompt" not in self.changed_data:
            return None
        return self.cleaned_data["prompt"] or None

    def preset_choice(self) -> str | None:
        return self.cleaned_data["preset"] or None
