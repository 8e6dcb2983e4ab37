"""The rules of the service. No I/O library is imported here: stores come in through
the constructors, typed by the protocols of ``authsvc.stores.base``."""
