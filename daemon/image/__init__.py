"""Image parts: .deb unpacking, root file systems, wheel install, tar writer, OCI layout."""
