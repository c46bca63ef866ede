export default function Page() {
  return (
    <main>
      <h1>Hello from your miosa sandbox</h1>
      <p>Edit app/page.jsx and save: the page reloads.</p>
    </main>
  )
}
