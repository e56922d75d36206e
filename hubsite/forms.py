from __future__ import annotations

from django import forms
from django.contrib.auth.forms import BaseUserCreationForm

from hubsite.models import User


class SignUpForm(BaseUserCreationForm[User]):
    class Meta:
        model = User
        fields = ("email",)

    def clean_email(self) -> str:
        email: str = self.cleaned_data["email"].strip().lower()
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError("An account with this e-mail address already exists.")
        return email
