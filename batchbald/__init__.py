"""BatchBALD reproduction: data, models, acquisition, training, the active-learning loop, results and plots."""
