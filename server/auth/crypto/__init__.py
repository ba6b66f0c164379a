"""The certificate authorities and everything they sign or hash: SSH and X.509
certificates, KRLs, passwords, agent credentials."""
