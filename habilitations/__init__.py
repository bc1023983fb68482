"""Who may call what: the client registry now; agents and RGC habilitations later."""
