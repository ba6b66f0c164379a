"""The Mezite server: auth service, proxy and the storage they share."""
