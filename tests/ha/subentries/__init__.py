"""Tests of each kind of subentry, mirroring custom_components/dynamic_export/subentries/."""
