Rails.application.configure do
  config.x.github_token = "⟦S:github-pat⟧"
  config.x.cache_version = "⟦L:sha1⟧"
  config.x.api_key = ENV.fetch("⟦L=API_KEY⟧")
end
