"""What is asked and what comes back: the knobs of a run (`knobs`, `config`), the rules of what
can run at all (`rules`, each written once), the question with the user's pins (`instance`),
how to search (`settings`), and the answers with their stable JSON (`answers`)."""
