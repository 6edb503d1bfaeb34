"""The form of the admin's "Generate header image" page."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from . import grounding as grounding_
from .conf import app_settings
from .models import ReferenceSet
from .references import ADVICE
from .specs import MAX_PROMPT_LENGTH, ModelSpec

#: Model inputs an editor may choose in the admin, in the order they are shown.
INPUT_FIELDS = ("resolution", "aspect_ratio", "output_format")

CHOICE_LABELS = {
    "match_input_image": _("Match the input image"),
    "jpg": _("JPEG"),
    "png": _("PNG"),
}


class MultipleImageInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class ReferenceFilesField(forms.FileField):
    """Any number of uploaded images (checked by :mod:`.references` when queued)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleImageInput(attrs={"accept": "image/*"}))
        super().__init__(**kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[Any]:
        files = data if isinstance(data, (list, tuple)) else [data] if data else []
        clean_one = super().clean
        return [clean_one(file, initial) for file in files]


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
    grounding = forms.ChoiceField(
        label=_("Grounding"),
        required=False,
        choices=list(grounding_.LABELS.items()),
        help_text=grounding_.HELP_TEXT,
    )
    prompt = forms.CharField(
        label=_("Prompt"),
        required=False,
        max_length=MAX_PROMPT_LENGTH,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 5, "cols": 80, "class": "vLargeTextField"}),
    )
    reference_set = forms.ChoiceField(
        label=_("Reference set"),
        required=False,
        help_text=ADVICE,
    )
    references = ReferenceFilesField(
        label=_("Reference images"),
        required=False,
    )
    steps = forms.MultipleChoiceField(
        label=_("Steps after generating"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_(
            "Run on the image once it is made, each billed on its own; the last one's image is "
            "attached. If a step fails, the image before it is attached instead."
        ),
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
        grounding: str = grounding_.OFF,
        steps: Sequence[tuple[str, str]] = (),
        default_steps: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["steps"].choices = list(steps)  # type: ignore[attr-defined]
        self.fields["steps"].initial = list(default_steps)
        if grounding_.can_ground(spec):
            self.fields["grounding"].initial = grounding
            if not grounding_.can_ground(spec, grounding_.IMAGE):
                choice: Any = self.fields["grounding"]  # a ChoiceField
                choice.choices = [
                    (value, label) for value, label in choice.choices if value != grounding_.IMAGE
                ]
        else:
            del self.fields["grounding"]
        none = [] if default_preset else [("", _("None"))]
        self.fields["preset"].choices = [*none, *presets]  # type: ignore[attr-defined]
        self.fields["preset"].initial = default_preset or ""
        for name in INPUT_FIELDS:
            allowed = spec.choices.get(name)
            if not allowed:
                del self.fields[name]
                continue
            field: Any = self.fields[name]  # a ChoiceField
            field.choices = [(value, CHOICE_LABELS.get(value, value)) for value in allowed]
            field.initial = defaults.get(name, spec.defaults.get(name))
        if spec.image_limit > 0:
            self.fields["reference_set"].choices = [  # type: ignore[attr-defined]
                ("", _("The preset's or the model's, if any")),
                *((item.name, str(item)) for item in ReferenceSet.objects.order_by("name")),
            ]
            self.fields["references"].help_text = _(
                "Images for this request only, sent after the set's: JPEG, PNG or WebP. At most "
                "%(limit)d images in all, the set's included."
            ) % {"limit": spec.image_limit}
        else:
            del self.fields["reference_set"], self.fields["references"]
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
        # What the image is, what goes with it, what follows it, then the words and the policy.
        self.order_fields(
            [
                "preset",
                *INPUT_FIELDS,
                "grounding",
                "reference_set",
                "references",
                "steps",
                "candidates",
                "prompt",
                "replace",
            ]
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

    def grounding_choice(self) -> str | None:
        """The grounding the editor chose, when changed (else the preset's or model's)."""
        if "grounding" not in self.fields or "grounding" not in self.changed_data:
            return None
        return self.cleaned_data["grounding"] or None

    def steps_choice(self) -> list[str] | None:
        """The steps the editor ticked, when changed (else the preset's: docs/steps.md)."""
        if "steps" not in self.changed_data:
            return None
        return list(self.cleaned_data["steps"])

    def reference_set_choice(self) -> str | None:
        """The set picked to replace the preset's or the model's, if any."""
        return self.cleaned_data.get("reference_set") or None

    def reference_files(self) -> list[Any]:
        return self.cleaned_data.get("references") or []
